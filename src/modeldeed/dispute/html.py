"""judgement.html: the judgement for people, self-contained (no scripts, no external files), verdict first.

Laid out like the demo's report (`report.html.Page`: the verdict box first, one line per claim marked as
counting or not, then the details), and rendered from the validated judgement document, so the page says
exactly what judgement.json says. Every value is HTML-escaped by the page (claim files are a stranger's, and
names, paths and reasons carry their text), and a content security policy forbids scripts and fetches.
"""

from __future__ import annotations

from typing import Any

from ..report.html import Page
from .judgement import JudgementDocument

POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def _claim_line(claim: Any) -> tuple[bool, str]:
    who = claim.claimant.fingerprint if claim.claimant is not None else "unreadable claim"
    name = f" ({claim.claimant.name})" if claim.claimant is not None and claim.claimant.name else ""
    if claim.counts and claim.registration is not None:
        r = claim.registration
        return (
            True,
            f"Claim {claim.number}, claimant {who}{name}: counts, registered at {r.integrated_time} (entry {r.index}).",
        )
    reasons = [*claim.reasons, *(reason for item in claim.evidence for reason in item.reasons)]
    why = reasons[0] if reasons else "no item of evidence counts"
    more = f" (and {len(reasons) - 1} more reasons below)" if len(reasons) > 1 else ""
    return False, f"Claim {claim.number}, claimant {who}{name}: does not count: {why}{more}"


def _reasons(page: Page, title: str, reasons: list[str]) -> None:
    if reasons:
        page.table([title], [[reason] for reason in reasons])


def _registrations(page: Page, records: list[Any]) -> None:
    if not records:
        page.paragraph("No valid registration.", css="note")
        return
    page.table(
        ["entry", "time (UTC)", "kind", "submitter", "artefact SHA-256"],
        [[r.index, r.integrated_time, r.kind, r.submitter_fingerprint, r.digest] for r in records],
    )


def _evidence(page: Page, item: Any) -> None:
    state = "counts" if item.counts else "does not count"
    page.heading(f"Evidence {item.number} ({item.kind or 'unreadable'}): {state}", level=4)
    page.paragraph(f"{item.summary}; verifier: {'accepted' if item.verified else 'rejected'}")
    _reasons(page, "reasons it does not count", list(item.reasons))
    _reasons(page, "notes", list(item.notes))
    details = item.details
    figures = [
        (name, str(details[name]))
        for name in ("check", "agreements", "triggers", "threshold", "labels", "chance_log2", "test_accuracy")
        if details.get(name) is not None
    ]
    if figures:
        page.definitions(figures)
    if item.artefacts:
        page.table(
            ["artefact", "kind", "SHA-256 (recomputed from the claim's files)"],
            [[a.role, a.kind, a.digest] for a in item.artefacts],
        )
    _registrations(page, list(item.registrations))


def _claim(page: Page, claim: Any) -> None:
    page.heading(f"Claim {claim.number}: {'counts' if claim.counts else 'does not count'}", level=3)
    pairs = [("directory", str(claim.path))]
    if claim.claimant is not None:
        pairs += [
            ("claimant fingerprint", claim.claimant.fingerprint),
            ("claimant public key", claim.claimant.public_key),
            ("calls itself", claim.claimant.name or "(no name given)"),
        ]
    if claim.registration is not None:
        r = claim.registration
        pairs.append(("earliest counting registration", f"entry {r.index} at {r.integrated_time}"))
    page.definitions(pairs)
    _reasons(page, "reasons", list(claim.reasons))
    for item in claim.evidence:
        _evidence(page, item)


def render(document: JudgementDocument) -> str:
    d = document
    first = d.first_appearance
    page = Page(f"Judgement on model {d.model.digest[:16]}…", content_security_policy=POLICY)
    page.verdict([(d.established, d.verdict), *(_claim_line(c) for c in d.claims)])
    page.definitions(
        [
            ("model", str(d.model.path)),
            ("model digest", d.model.digest),
            ("data", d.data),
            ("log", f"{d.log.name} ({d.log.verifier_key})"),
            ("first appearance", f"{first.time} ({first.source})" if first else "not known"),
            ("receipts from one consistent log", "yes" if d.consistency.consistent else "NO"),
            ("decided at", f"{d.decided_at} (UTC)"),
        ]
    )
    if not d.consistency.consistent:
        page.heading("Consistency of the log")
        _reasons(page, "why the receipts cannot be ordered", list(d.consistency.reasons))
    page.heading(f"Claims ({len(d.claims)})")
    for claim in d.claims:
        _claim(page, claim)
    page.heading("What this proves, and what it does not")
    _reasons(page, "note", list(d.notes))
    page.paragraph(f"modeldeed {d.modeldeed_version}, {d.format} version {d.version}", css="note")
    return page.render()
