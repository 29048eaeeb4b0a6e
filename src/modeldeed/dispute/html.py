"""judgement.html: the judgement for people, self-contained (no scripts, no external files), verdict first.

Rendered from the validated judgement document, so the page says exactly what judgement.json says. Every
value is HTML-escaped: claim files are a stranger's, and names, paths and reasons carry their text.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .judgement import JudgementDocument

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.verdict { font-size: 1.2rem; padding: .8rem 1rem; border-radius: 6px; }
.established { background: #e6f4ea; border: 1px solid #7bb58a; }
.not-established { background: #fdecea; border: 1px solid #d08a83; }
section.claim { border: 1px solid #ccc; border-radius: 6px; padding: .2rem 1rem 1rem; margin: 1rem 0; }
.counts { color: #1d6b33; } .fails { color: #a2281c; }
table { border-collapse: collapse; margin: .4rem 0; } td, th { border: 1px solid #ddd; padding: .2rem .5rem;
  text-align: left; vertical-align: top; } code { font-size: .85rem; word-break: break-all; }
"""


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _list(items: list[str], empty: str = "") -> str:
    if not items:
        return f"<p>{esc(empty)}</p>" if empty else ""
    return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


def _registrations(records: list[Any]) -> str:
    if not records:
        return "<p>No valid registration.</p>"
    head = "<tr><th>entry</th><th>time (UTC)</th><th>kind</th><th>submitter</th><th>artefact SHA-256</th></tr>"
    body = "".join(
        f"<tr><td>{esc(r.index)}</td><td>{esc(r.integrated_time)}</td><td>{esc(r.kind)}</td>"
        f"<td><code>{esc(r.submitter_fingerprint)}</code></td><td><code>{esc(r.digest)}</code></td></tr>"
        for r in records
    )
    return f"<table>{head}{body}</table>"


def _evidence(item: Any) -> str:
    state = "<span class='counts'>counts</span>" if item.counts else "<span class='fails'>does not count</span>"
    details = item.details
    figures = [
        (name, esc(details[name]))
        for name in ("check", "agreements", "triggers", "threshold", "labels", "chance_log2", "test_accuracy")
        if details.get(name) is not None
    ]
    artefacts = "".join(
        f"<tr><td>{esc(a.role)}</td><td>{esc(a.kind)}</td><td><code>{esc(a.digest)}</code></td></tr>"
        for a in item.artefacts
    )
    return (
        f"<h4>Evidence {esc(item.number)} ({esc(item.kind or 'unreadable')}): {state}</h4>"
        f"<p>{esc(item.summary)}; verifier: {'accepted' if item.verified else 'rejected'}</p>"
        + ("<h5>Reasons it does not count</h5>" + _list(item.reasons) if item.reasons else "")
        + ("<h5>Notes</h5>" + _list(item.notes) if item.notes else "")
        + (_rows(figures) if figures else "")
        + (
            f"<h5>Artefacts (digests recomputed from the claim's files)</h5><table>{artefacts}</table>"
            if artefacts
            else ""
        )
        + "<h5>Registrations</h5>"
        + _registrations(item.registrations)
    )


def _claim(claim: Any) -> str:
    state = "<span class='counts'>counts</span>" if claim.counts else "<span class='fails'>does not count</span>"
    pairs = [("directory", f"<code>{esc(claim.path)}</code>")]
    if claim.claimant is not None:
        pairs += [
            ("claimant fingerprint", f"<code>{esc(claim.claimant.fingerprint)}</code>"),
            ("claimant public key", f"<code>{esc(claim.claimant.public_key)}</code>"),
            ("calls itself", esc(claim.claimant.name or "(no name given)")),
        ]
    if claim.registration is not None:
        r = claim.registration
        pairs.append(("earliest counting registration", f"entry {esc(r.index)} at {esc(r.integrated_time)}"))
    return (
        f"<section class='claim'><h3>Claim {esc(claim.number)}: {state}</h3>{_rows(pairs)}"
        + ("<h4>Reasons</h4>" + _list(claim.reasons) if claim.reasons else "")
        + "".join(_evidence(item) for item in claim.evidence)
        + "</section>"
    )


def render(document: JudgementDocument) -> str:
    d = document
    first = d.first_appearance
    pairs = [
        ("model", f"<code>{esc(d.model.path)}</code>"),
        ("model digest", f"<code>{esc(d.model.digest)}</code>"),
        ("data", esc(d.data)),
        ("log", f"{esc(d.log.name)} (<code>{esc(d.log.verifier_key)}</code>)"),
        ("first appearance", f"{esc(first.time)} ({esc(first.source)})" if first else "not known"),
        ("receipts from one consistent log", "yes" if d.consistency.consistent else "NO"),
        ("decided at", f"{esc(d.decided_at)} (UTC)"),
    ]
    css = "established" if d.established else "not-established"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Judgement on model {esc(d.model.digest[:16])}</title><style>{STYLE}</style></head><body>"
        f"<h1>Judgement</h1><p class='verdict {css}'>{esc(d.verdict)}</p>"
        f"{_rows(pairs)}"
        + ("" if d.consistency.consistent else "<h2>Consistency of the log</h2>" + _list(d.consistency.reasons))
        + f"<h2>Claims ({len(d.claims)})</h2>"
        + "".join(_claim(c) for c in d.claims)
        + "<h2>What this proves, and what it does not</h2>"
        + _list(d.notes)
        + f"<p><small>modeldeed {esc(d.modeldeed_version)}, {esc(d.format)} version {esc(d.version)}</small></p>"
        + "</body></html>\n"
    )
