"""The judgement file (`modeldeed.dispute-judgement`, version 1): the decision, every claim, every reason.

Written as judgement.json next to judgement.html (`html.render`); the layout is in docs/formats.md. It is a
declared document, so what is written is validated like everything modeldeed reads, and a reader (a report,
an appeal) loads it with `load_judgement`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..files import write_bytes_atomic, write_json_atomic
from ..registry.entry import format_time
from ..registry.identity import fingerprint
from ..registry.registration import Registration
from ..schema import Document, Hex64, NonNegative, Positive, load_document, validate_document
from .decide import ClaimOutcome, EvidenceOutcome, Judgement

JUDGEMENT_FORMAT = "modeldeed.dispute-judgement"
JUDGEMENT_FILE, JUDGEMENT_HTML = "judgement.json", "judgement.html"


class RegistrationRecord(Document):
    kind: str
    digest: Hex64
    index: NonNegative
    integrated_time: str
    submitter_key: Hex64
    submitter_fingerprint: str
    log: str
    checkpoint_size: Positive


class ArtefactRecord(Document):
    role: str
    kind: str
    digest: Hex64


class EvidenceRecord(Document):
    number: NonNegative
    kind: str | None
    summary: str
    verified: bool
    counts: bool
    reasons: list[str]
    notes: list[str]
    artefacts: list[ArtefactRecord]
    registrations: list[RegistrationRecord]
    anchor: RegistrationRecord | None
    details: dict[str, Any]


class ClaimantRecord(Document):
    public_key: Hex64
    fingerprint: str
    name: str


class ClaimRecord(Document):
    number: NonNegative
    path: str
    claimant: ClaimantRecord | None
    counts: bool
    registration: RegistrationRecord | None
    evidence_number: NonNegative | None
    reasons: list[str]
    evidence: list[EvidenceRecord]


class FirstAppearanceRecord(Document):
    time: str
    source: str
    registration: RegistrationRecord | None


class ConsistencyRecord(Document):
    consistent: bool
    reasons: list[str]
    checked: list[list[NonNegative]]


class ModelRecord(Document):
    path: str
    digest: Hex64


class LogRecord(Document):
    name: str
    verifier_key: str


class WinnerRecord(Document):
    claim: NonNegative
    claimant: ClaimantRecord
    registration: RegistrationRecord
    evidence: NonNegative


class JudgementDocument(Document):
    format: Literal["modeldeed.dispute-judgement"]
    version: Literal[1]
    modeldeed_version: str
    established: bool
    verdict: str
    decided_at: str
    model: ModelRecord
    data: str
    log: LogRecord
    first_appearance: FirstAppearanceRecord | None
    consistency: ConsistencyRecord
    winner: WinnerRecord | None
    claims: list[ClaimRecord]
    notes: list[str]


def _registration(registration: Registration | None) -> dict[str, Any] | None:
    return registration.to_json() if registration is not None else None


def _claimant(claim: ClaimOutcome) -> dict[str, Any] | None:
    document = claim.loaded.document
    if document is None:
        return None
    key = document.claimant.public_key
    return {"public_key": key, "fingerprint": fingerprint(key), "name": document.claimant.name}


def _evidence(item: EvidenceOutcome) -> dict[str, Any]:
    finding = item.finding
    if finding is None:
        return {"number": item.number, "kind": None, "summary": "could not be read", "verified": False,
                "counts": False, "reasons": list(item.reasons), "notes": [], "artefacts": [], "registrations": [],
                "anchor": None, "details": {}}  # fmt: skip
    return {
        "number": item.number,
        "kind": finding.kind,
        "summary": finding.summary,
        "verified": finding.verified,
        "counts": item.counts,
        "reasons": list(item.reasons),
        "notes": list(finding.notes),
        "artefacts": [a.to_json() for a in finding.artefacts],
        "registrations": [r.to_json() for r in finding.registrations],
        "anchor": _registration(finding.anchor),
        "details": finding.details,
    }


def judgement_document(judgement: Judgement) -> JudgementDocument:
    j = judgement
    winner = None
    if j.winner is not None and j.winner.anchor is not None:
        winner = {
            "claim": j.winner.number,
            "claimant": _claimant(j.winner),
            "registration": _registration(j.winner.anchor),
            "evidence": j.winner.anchor_evidence,
        }
    fields = {
        "format": JUDGEMENT_FORMAT,
        "version": 1,
        "modeldeed_version": __version__,
        "established": j.established,
        "verdict": j.verdict,
        "decided_at": format_time(j.decided_at),
        "model": {"path": str(j.model_dir), "digest": j.model_digest},
        "data": j.data_name,
        "log": {"name": j.log_key.name, "verifier_key": str(j.log_key)},
        "first_appearance": j.first_appearance.to_json() if j.first_appearance is not None else None,
        "consistency": {
            "consistent": j.consistency.consistent,
            "reasons": list(j.consistency.reasons),
            "checked": [list(pair) for pair in j.consistency.checked],
        },  # fmt: skip
        "winner": winner,
        "claims": [
            {
                "number": c.number,
                "path": str(c.loaded.directory),
                "claimant": _claimant(c),
                "counts": c.counts,
                "registration": _registration(c.anchor),
                "evidence_number": c.anchor_evidence,
                "reasons": list(c.reasons),
                "evidence": [_evidence(item) for item in c.evidence],
            }
            for c in j.claims
        ],
        "notes": list(j.notes),
    }
    return validate_document(JudgementDocument, fields, "the judgement")


def write_judgement(out: str | Path, judgement: Judgement) -> JudgementDocument:
    """judgement.json, then judgement.html, in `out` (each written atomically)."""
    from .html import render

    out = Path(out)
    document = judgement_document(judgement)
    write_json_atomic(out / JUDGEMENT_FILE, document.model_dump(mode="json"))
    write_bytes_atomic(out / JUDGEMENT_HTML, render(document).encode())
    return document


def load_judgement(path: str | Path) -> JudgementDocument:
    path = Path(path)
    return load_document(JudgementDocument, path / JUDGEMENT_FILE if path.is_dir() else path, max_bytes=64 << 20)
