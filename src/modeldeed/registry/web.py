"""Plain server-rendered pages for a judge: recent entries, search by digest, one page per entry.

No JavaScript, no external assets; every value is HTML-escaped (a submitter controls kinds, digests and
keys, validated as they are, and nothing reaches a page unescaped anyway). The entry page's "verify"
result is the server re-checking, as a client would: the submitter's signature, the log's signature on
its latest checkpoint, and the entry's audit path to that checkpoint's root.
"""

from __future__ import annotations

import html
import re
from typing import Annotated

from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse

from . import merkle
from .checkpoint import open_checkpoint
from .entry import Entry
from .identity import fingerprint
from .log import TransparencyLog
from .note import NoteError

_HEX64 = re.compile(r"[0-9a-f]{64}")
PAGE_SIZE = 50
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
code{font-size:.85em;word-break:break-all}.ok{color:#11692b;font-weight:bold}.bad{color:#a31515;font-weight:bold}
input[type=text]{width:40em;max-width:100%}.t{white-space:nowrap}"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{_STYLE}</style></head><body><p><a href='/'>modeldeed registry</a></p>"
        f"<h1>{esc(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def search_form(value: str = "") -> str:
    return (
        "<form action='/search' method='get'><label>SHA-256 of an artefact: "
        f"<input type=text name=digest value='{esc(value)}' pattern='[0-9a-f]{{64}}' required></label> "
        "<button>Search</button></form>"
    )


def entry_rows(entries: list[Entry]) -> str:
    if not entries:
        return "<p>No entries.</p>"
    rows = "".join(
        f"<tr><td><a href='/entry/{e.index}'>{e.index}</a></td><td class=t>{esc(e.integrated_time)}</td>"
        f"<td>{esc(e.kind)}</td><td><a href='/search?digest={esc(e.digest)}'><code>{esc(e.digest)}</code></a></td>"
        f"<td><code>{esc(fingerprint(e.submitter_key))}</code></td></tr>"
        for e in entries
    )
    head = "<tr><th>index</th><th>time (UTC)</th><th>kind</th><th>artefact SHA-256</th><th>submitter</th></tr>"
    return f"<table>{head}{rows}</table>"


def verify_entry(tlog: TransparencyLog, entry: Entry) -> tuple[bool, list[str], str]:
    """Re-check an entry as a client would, against the latest signed checkpoint."""
    reasons: list[str] = []
    if not entry.submission.signature_valid():
        reasons.append("the submitter's signature does not verify")
    note = tlog.storage.latest_checkpoint()
    if note is None:
        return False, ["no checkpoint is stored"], ""
    try:
        checkpoint = open_checkpoint(note, tlog.signer.verifier())
    except NoteError as exc:
        return False, [f"the latest checkpoint does not verify: {exc}"], ""
    proof = tlog.inclusion_proof(entry.index, checkpoint.size)
    if not merkle.verify_inclusion(entry.index, checkpoint.size, entry.leaf_hash(), proof, checkpoint.root):
        reasons.append(f"the audit path does not lead to the root of checkpoint {checkpoint.size}")
    against = f"checkpoint of size {checkpoint.size}, audit path of {len(proof)} hashes"
    return not reasons, reasons, against


def add_pages(app: FastAPI, tlog: TransparencyLog) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index(before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> HTMLResponse:
        entries = tlog.storage.recent_entries(PAGE_SIZE, before)
        size = tlog.size
        more = ""
        if entries and entries[-1].index > 0:
            more = f"<p><a href='/?before={entries[-1].index}'>older entries</a></p>"
        body = (
            f"<p>Log <code>{esc(tlog.signer.name)}</code>, {size} entries. Verifier key: "
            f"<code>{esc(tlog.signer.verifier())}</code></p>{search_form()}<h2>Recent entries</h2>"
            f"{entry_rows(entries)}{more}"
        )
        return page("Transparency log", body)

    @app.get("/search", response_class=HTMLResponse)
    def search(digest: str = "") -> HTMLResponse:
        digest = digest.strip().lower()
        if not _HEX64.fullmatch(digest):
            body = f"<p class=bad>A digest is 64 hexadecimal digits (SHA-256).</p>{search_form()}"
            return page("Search", body, status=400)
        entries = tlog.storage.entries_by_digest(digest)
        note = "earliest first; the first is the earliest registration" if entries else ""
        body = f"{search_form(digest)}<p>{len(entries)} registrations of <code>{esc(digest)}</code> {note}</p>"
        return page("Search", body + entry_rows(entries))

    @app.get("/entry/{index}", response_class=HTMLResponse)
    def entry_page(index: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> HTMLResponse:
        entry = tlog.storage.entry(index)
        if entry is None:
            return page("No such entry", f"<p>The log has {tlog.size} entries.</p>", status=404)
        valid, reasons, against = verify_entry(tlog, entry)
        verdict = (
            f"<span class=ok>verified</span> ({esc(against)})"
            if valid
            else "<span class=bad>NOT verified</span>: " + esc("; ".join(reasons))
        )
        fields = [
            ("kind", esc(entry.kind)),
            ("registered (UTC, the log's clock)", esc(entry.integrated_time)),
            (
                "artefact SHA-256",
                f"<a href='/search?digest={esc(entry.digest)}'><code>{esc(entry.digest)}</code></a>"
                " (every registration of it)",
            ),
            ("submitter fingerprint", f"<code>{esc(fingerprint(entry.submitter_key))}</code>"),
            ("submitter public key", f"<code>{esc(entry.submitter_key)}</code>"),
            ("first included in checkpoint of size", esc(entry.checkpoint_size)),
            ("verify", verdict),
            ("receipt", f"<a href='/api/v1/entries/{entry.index}/receipt'>JSON</a>"),
        ]
        rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in fields)
        return page(f"Entry {entry.index}", f"<table>{rows}</table>")
