"""The evidence interface: what one item of a claim must tell the judge, whatever the scheme behind it.

A claim holds one or more items of evidence (a watermark key with its receipt; later a proof of learning
with its statement and commitment receipts). The decision between claims (`decide`) never looks inside an
item: it asks each kind to judge itself and reads the finding. So a new kind is a new module that
implements `Evidence` (and `EvidenceSource`, to put it into a claim) and one line in `EVIDENCE_KINDS`;
the decision logic does not change.

What every kind must do in `judge`, because the decision relies on it:

1. Run the scheme's real verifier on the model in front of the judge (`context.model`), with the key,
   proof or reveal from the claim directory; `verified` is its outcome, its reasons go into `reasons`.
2. Recompute the digest of every registered artefact from the files it was handed (never take it from a
   receipt) and check each receipt with `registry.check_registration` against `context.log_key`. Valid
   registrations go into `registrations` (whoever submitted them: a registration of the same artefact by
   someone else is evidence too), their receipts into `receipts` (for the one-log consistency check).
3. Name the `anchor`: the registration that dates the evidence, i.e. the one that must precede the model's
   first appearance (a watermark key's; a PoL training statement's). It must be a registration by
   `context.claimant_key`; otherwise there is no anchor and a reason says why.
4. Add reasons for everything that makes the evidence worthless for this dispute even though it verifies
   (a demonstration key, labels chosen by the key's maker with no known first appearance, a revealed set
   that was public before the model, a chance figure above 2^-`context.min_security_bits`).

The decision then applies, identically for every kind: the anchor's submitter is the claimant, the anchor
precedes the first appearance, no one else registered the same artefact earlier, every receipt comes from
one consistent log, and the earliest anchor wins.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..registry.entry import format_time
from ..registry.registration import Registration

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data import DataSplits
    from ..registry import Receipt, VerifierKey
    from ..schema import Document
    from .claim import ClaimFiles


@dataclass(frozen=True)
class FirstAppearance:
    """The earliest moment the model is known to have existed, and what shows it."""

    time: datetime  # UTC
    source: str  # in words: "--first-seen", "the model's registration (entry 7)"
    registration: Registration | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "source": self.source,
            "registration": self.registration.to_json() if self.registration is not None else None,
        }


@dataclass(frozen=True)
class DisputeContext:
    """What the judge holds while judging one claim's evidence."""

    model: nn.Module
    model_dir: Path
    model_digest: str
    data: DataSplits
    data_name: str
    log_key: VerifierKey
    claimant_key: str  # the public key (hex) that signed the claim
    first_appearance: FirstAppearance | None
    min_security_bits: float
    reference_model: nn.Module | None = None


@dataclass(frozen=True)
class Artefact:
    """A registered artefact an item of evidence covers, with the digest recomputed from the claim's files."""

    role: str  # for people: "verification key", "reveal", "training statement", ...
    kind: str  # the registry kind
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "kind": self.kind, "digest": self.digest}


@dataclass(frozen=True)
class EvidenceFinding:
    """The judge's finding on one item of evidence. See the module docstring for what each field must hold."""

    kind: str
    summary: str  # one line for people: which key, which check, how many triggers agreed
    verified: bool  # the scheme's verifier accepted the model
    reasons: tuple[str, ...]  # every reason it does not count (verification, receipts, identity, worth)
    notes: tuple[str, ...] = ()
    artefacts: tuple[Artefact, ...] = ()
    registrations: tuple[Registration, ...] = ()  # every valid registration of the artefacts, by anyone
    anchor: Registration | None = None  # the claimant's registration that dates this evidence
    receipts: tuple[Receipt, ...] = ()  # the receipts behind `registrations`
    details: dict[str, Any] = field(default_factory=dict)  # the verifier's own verdict, as JSON
    triggers: frozenset[str] = frozenset()  # `trigger_fingerprints` of the triggers its check relies on
    revealed: frozenset[str] = frozenset()  # those of the triggers it makes public (a revealed set) ...
    revealed_at: Registration | None = None  # ... and the reveal's registration: public by then at the latest

    @property
    def valid(self) -> bool:
        """Verified, dated by the claimant's own registration, and nothing against it (time aside)."""
        return self.verified and self.anchor is not None and not self.reasons


def trigger_fingerprints(images: torch.Tensor) -> frozenset[str]:
    """One SHA-256 per trigger image, of its pixels at 8 bits (so a PNG round trip keeps it): what lets the
    judge see one claimant's key reuse triggers another claimant revealed."""
    import hashlib

    import torch

    pixels = (images.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return frozenset(hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in pixels)


class Evidence(ABC):
    """One item of evidence from a claim directory: a kind, a format for its entry in claim.json, a judge."""

    kind: ClassVar[str]  # the `kind` of its entry in claim.json
    document: ClassVar[type[Document]]  # the entry's declared format (a modeldeed.schema.Document)

    @classmethod
    @abstractmethod
    def load(cls, entry: Any, files: ClaimFiles) -> Evidence:
        """Read the item's files from the claim directory (`files.path(...)`: listed, signed, inside it)."""

    @abstractmethod
    def judge(self, context: DisputeContext) -> EvidenceFinding:
        """Verify against the model, check the receipts, name the anchor; see the module docstring."""


class EvidenceSource(ABC):
    """What a claimant puts into a claim directory for one item of evidence (used by `make_claim`)."""

    kind: ClassVar[str]

    @abstractmethod
    def write(self, directory: Path, prefix: str, claimant_key: str) -> dict[str, Any]:
        """Copy the item's files under `directory / prefix` and return its entry for claim.json (paths relative
        to `directory`). Refuse (ModeldeedError) what could never count, e.g. a receipt by another key."""


def evidence_kinds() -> dict[str, type[Evidence]]:
    """Every kind of evidence the judge knows, by the `kind` of its claim.json entry."""
    from .pol_evidence import PolEvidence
    from .watermark_evidence import WatermarkEvidence

    return {WatermarkEvidence.kind: WatermarkEvidence, PolEvidence.kind: PolEvidence}
