"""modeldeed.dispute: the judge's decision between competing ownership claims on one model.

    sources = [WatermarkSource("keys/"), PolSource("proof/", "commit/", "commitment.json")]  # evidence + receipts
    make_claim("claim/", load_identity("id/"), model_digest("runs/wm"), sources)

    judgement = decide("runs/wm", ["claim-a/", "claim-b/"], data_name="digits", log_key=load_log_key("log.key.pub"),
                       registry=RegistryClient(URL), first_seen=...)
    write_judgement("judgement/", judgement)                        # judgement.json, judgement.html

The rule, what the judge needs and what a judgement proves: docs/registry.md ("Disputes"). New kinds of
evidence implement `Evidence` and `EvidenceSource` (evidence.py) and are listed in `evidence_kinds`.
"""

from .claim import ClaimDocument, LoadedClaim, load_claim, make_claim, sign_claim
from .decide import Judgement, decide
from .evidence import (
    Artefact,
    DisputeContext,
    Evidence,
    EvidenceFinding,
    EvidenceSource,
    FirstAppearance,
    evidence_kinds,
)
from .judgement import JudgementDocument, judgement_document, load_judgement, write_judgement
from .pol_evidence import PolEvidence, PolSource
from .watermark_evidence import WatermarkEvidence, WatermarkSource

__all__ = [
    "Artefact",
    "ClaimDocument",
    "DisputeContext",
    "Evidence",
    "EvidenceFinding",
    "EvidenceSource",
    "FirstAppearance",
    "Judgement",
    "JudgementDocument",
    "LoadedClaim",
    "PolEvidence",
    "PolSource",
    "WatermarkEvidence",
    "WatermarkSource",
    "decide",
    "evidence_kinds",
    "judgement_document",
    "load_claim",
    "load_judgement",
    "make_claim",
    "sign_claim",
    "write_judgement",
]
