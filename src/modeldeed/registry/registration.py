"""What a receipt proves about one artefact: checked against the log's key, the artefact's digest, its kind.

`verify_receipt` says whether a receipt is genuine; it does not say *what for*. A receipt is public, so it is
evidence only for the artefact whose digest it carries, registered as the kind it names, by the submitter
whose key it names. `check_registration` checks all of that in one place, for every scheme: the verifier
recomputes the digest from the artefact it was handed (never from the receipt) and passes it here.

    check = check_registration(receipt, log_key, kind="watermark-key", digest=recomputed_digest)
    check.valid, check.reasons, check.registration.time, check.registration.fingerprint

The scheme layers (watermark, PoL, disputes) build on this; the registry itself still knows no scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .entry import format_time
from .identity import fingerprint
from .note import VerifierKey
from .receipt import Receipt, verify_receipt


@dataclass(frozen=True)
class Registration:
    """A registration that a valid receipt proves: this digest, as this kind, by this key, at this time/index."""

    kind: str
    digest: str
    index: int
    time: datetime  # UTC, the log's clock
    submitter_key: str
    log: str  # the log's name (its checkpoints' origin)
    checkpoint_size: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.submitter_key)

    @property
    def time_text(self) -> str:
        return format_time(self.time)

    def sentence(self) -> str:
        """One line for a verdict: where, when and by whom."""
        return (
            f"registered on the log {self.log} as entry {self.index} at {self.time_text} (UTC, the log's clock) "
            f"by submitter {self.fingerprint}; the receipt was checked against the log's key"
        )

    def precedes(self, other: Registration) -> bool:
        """Earlier in the log: one log orders all its entries (index), and times never go back along it."""
        return (self.time, self.index) < (other.time, other.index)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "digest": self.digest,
            "index": self.index,
            "integrated_time": self.time_text,
            "submitter_key": self.submitter_key,
            "submitter_fingerprint": self.fingerprint,
            "log": self.log,
            "checkpoint_size": self.checkpoint_size,
        }


@dataclass(frozen=True)
class RegistrationCheck:
    """The outcome of `check_registration`: the registration it proves, or every reason it proves nothing."""

    registration: Registration | None  # None unless valid
    reasons: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.registration is not None


def check_registration(
    receipt: Receipt,
    log_key: VerifierKey,
    *,
    kind: str,
    digest: str,
    what: str = "the artefact",
    submitter_key: str | None = None,
) -> RegistrationCheck:
    """Does `receipt` prove that `digest` (recomputed by the caller from `what`) was registered as `kind`?

    With `submitter_key`, also that the key which registered it is this one (a receipt is public: anyone can
    copy it, so a registration counts for a claimant only if the claimant is its submitter).
    """
    verdict = verify_receipt(receipt, log_key)
    entry = receipt.entry
    reasons = [f"receipt: {reason}" for reason in verdict.reasons]
    if entry.kind != kind:
        reasons.append(f"receipt: it registers a {entry.kind!r} artefact, not a {kind!r}")
    if entry.digest != digest:
        reasons.append(
            f"receipt: it registers the digest {entry.digest}, but {what} hashes to {digest}; a receipt is "
            "evidence only for the artefact whose digest it carries"
        )
    if submitter_key is not None and entry.submitter_key != submitter_key:
        reasons.append(
            f"receipt: it was submitted by {fingerprint(entry.submitter_key)}, not by {fingerprint(submitter_key)}; "
            "receipts are public, so a registration counts only for the key that made it"
        )
    if reasons:
        return RegistrationCheck(None, tuple(reasons))
    registration = Registration(
        kind=entry.kind,
        digest=entry.digest,
        index=entry.index,
        time=entry.time,
        submitter_key=entry.submitter_key,
        log=log_key.name,
        checkpoint_size=entry.checkpoint_size,
    )
    return RegistrationCheck(registration, ())
