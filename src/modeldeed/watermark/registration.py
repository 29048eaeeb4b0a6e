"""Watermark keys and reveals on the transparency log: what is registered, and what a registration means.

A verification key proves nothing about ownership unless it provably existed before the model (Adi et al.,
Section 3): anyone can make a key after seeing a model. So the key is registered on the log
(`modeldeed.registry`) before the model appears, and a verifier checks the receipt and compares its time
with the model's first appearance.

What is registered (the same bytes whoever registers: `keygen --registry`, `registry publish KEYDIR`):

    watermark-key      SHA-256(VerificationKey.canonical_bytes()): the canonical JSON of the whole validated key,
                       opened half included. Every trigger image and label is bound through its commitment,
                       so the digest names the key and nothing else; re-indenting the file changes nothing.
    watermark-reveal   the reveal id: SHA-256 of the canonical reveal.json (which names the SHA-256 of
                       reveal.safetensors). A registered reveal was public by its registration time at the latest.

A verifier never takes the digest from the receipt: it recomputes it from the key (or reveal) it was handed,
and `registry.check_registration` compares. What a key's registration time means for a verdict:

- registered before the model's first appearance: the key existed before the model; only then do labels
  chosen by the key's maker mean anything.
- registered at or after it, with chosen labels: worthless (the labels could be the model's own
  predictions); the verdict is rejected with that reason.
- registered at or after it, with derived labels: the time proves nothing against a key made after seeing
  the model; only the chance figure (a forger must grind that many trigger sets) stands. A note says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..files import canonical_json
from ..registry import Receipt, RegistryClient, VerifierKey, check_registration
from ..registry.client import Submitted
from ..registry.entry import format_time as log_time
from ..registry.identity import Identity
from ..registry.registration import Registration, RegistrationCheck
from .documents import RevealDocument, read_document
from .keys import VerificationKey, key_path
from .reveal import REVEAL_FILE, RevealedSet
from .reveal import parse_time as reveal_time
from .verify import WatermarkVerdict

KEY_KIND = "watermark-key"
REVEAL_KIND = "watermark-reveal"
KEY_RECEIPT_FILE = "verification_key.receipt.json"  # written into the key directory by `keygen --registry`
REVEAL_RECEIPT_FILE = "reveal.receipt.json"  # written into the reveal directory by `reveal --registry`


def key_digest(verification_key: VerificationKey) -> str:
    """The digest a key is registered under: SHA-256 of its canonical JSON (opened half included)."""
    return hashlib.sha256(verification_key.canonical_bytes()).hexdigest()


def reveal_digest(reveal: RevealedSet) -> str:
    """The digest a reveal is registered under: its reveal id."""
    return reveal.reveal_id


def reveal_file_digest(path: str | Path) -> str:
    """The reveal id from reveal.json alone (validated; `registry publish` has no key to load the images with)."""
    json_path, directory = key_path(path, REVEAL_FILE)
    document = read_document(RevealDocument, json_path, within=directory)
    return hashlib.sha256(canonical_json(document.model_dump())).hexdigest()


def _register(client: RegistryClient, identity: Identity, kind: str, digest: str) -> Submitted:
    submitted = client.register(identity, kind, digest)
    entry = submitted.receipt.entry
    if (entry.kind, entry.digest, entry.submitter_key) != (kind, digest, identity.public_key):
        raise ModeldeedError(f"{client.base_url}: the log answered with a receipt for another entry")
    return submitted


def register_key(client: RegistryClient, identity: Identity, verification_key: VerificationKey) -> Submitted:
    """Register the key's digest as `identity`; the receipt is the log's answer (check it with the log's key)."""
    return _register(client, identity, KEY_KIND, key_digest(verification_key))


def register_reveal(client: RegistryClient, identity: Identity, reveal: RevealedSet) -> Submitted:
    """Register a reveal's id, so that the time from which its set is public is itself public."""
    return _register(client, identity, REVEAL_KIND, reveal_digest(reveal))


@dataclass(frozen=True)
class Binding:
    """What a checked receipt says about a key's (or a reveal's) time, and what that means for a verdict.

    `reasons` reject the verdict (a receipt that does not check, or one that shows the claim worthless);
    `notes` say what the registration proves and what it does not.
    """

    role: str  # "key" or "reveal"
    check: RegistrationCheck
    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def registration(self) -> Registration | None:
        return self.check.registration

    def sentence(self) -> str | None:
        """For `verify(..., registered=...)`: the key's registration in words (None: not bound in time)."""
        return self.registration.sentence() if self.registration is not None else None

    def to_json(self) -> dict[str, Any]:
        registration = self.registration
        return {
            "valid": registration is not None,
            "reasons": list(self.reasons),
            **(registration.to_json() if registration is not None else {}),
        }


def bind_key(
    verification_key: VerificationKey,
    receipt: Receipt,
    log_key: VerifierKey,
    *,
    first_seen: datetime | None = None,
    submitter_key: str | None = None,
) -> Binding:
    """Check `receipt` for this key (digest recomputed here) and compare its time with `first_seen`."""
    vk = verification_key
    check = check_registration(
        receipt, log_key, kind=KEY_KIND, digest=key_digest(vk), what="the verification key", submitter_key=submitter_key
    )
    reasons, notes = list(check.reasons), []
    registration = check.registration
    if registration is not None and first_seen is not None:
        if registration.time < first_seen:
            notes.append(
                f"the key was registered at {registration.time_text}, before the model's first appearance "
                f"({log_time(first_seen)}): it existed before the model"
            )
        elif vk.label_kind == "chosen":
            reasons.append(
                f"the key's labels were chosen by its maker and it was registered at {registration.time_text}, not "
                f"before the model's first appearance ({log_time(first_seen)}): its labels could be the model's own "
                "predictions, so this acceptance is worthless as evidence of ownership"
            )
        else:
            notes.append(
                f"the key was registered at {registration.time_text}, not before the model's first appearance "
                f"({log_time(first_seen)}): the registration does not show that the key predates the model; only the "
                "chance figure stands against a key made after seeing it"
            )
    return Binding("key", check, tuple(reasons), tuple(notes))


def bind_reveal(
    reveal: RevealedSet, receipt: Receipt, log_key: VerifierKey, *, first_seen: datetime | None = None
) -> Binding:
    """Check a reveal's receipt: its set was public by the registration time at the latest.

    The reveal's own date is its maker's word; the registration is the log's. If the registration is earlier,
    the set was public from then, and a model first seen at or after it could have been fitted to the set.
    """
    check = check_registration(receipt, log_key, kind=REVEAL_KIND, digest=reveal_digest(reveal), what="the reveal")
    reasons, notes = list(check.reasons), []
    registration = check.registration
    if registration is not None:
        notes.append(
            f"the reveal of set {reveal.set_index} was registered at {registration.time_text} (entry "
            f"{registration.index}): the set was public by then at the latest"
        )
        dated = reveal_time(reveal.created)
        if first_seen is not None and registration.time <= first_seen < dated:
            reasons.append(
                f"set {reveal.set_index} was public by its registration at {registration.time_text}, and the model "
                f"was first seen at {log_time(first_seen)}, not before: anyone could have fitted the model to the "
                "revealed set; it does not count"
            )
    return Binding("reveal", check, tuple(reasons), tuple(notes))


def bound_verdict(verdict: WatermarkVerdict, *bindings: Binding) -> WatermarkVerdict:
    """The verdict with every binding's reasons, notes and registration (metrics `registration`,
    `reveal_registration`). Pass the key binding's `sentence()` as `registered=` when verifying, so that the
    verdict's note on time is the registration instead of "not bound in time"."""
    reasons = [r for b in bindings for r in b.reasons]
    notes = [n for b in bindings for n in b.notes]
    metrics = dict(verdict.metrics)
    for binding in bindings:
        metrics["registration" if binding.role == "key" else f"{binding.role}_registration"] = binding.to_json()
        if binding.role == "reveal" and binding.reasons and "counts" in metrics:
            metrics["counts"] = False
    return dataclasses.replace(
        verdict,
        accepted=verdict.accepted and not reasons,
        reasons=(*verdict.reasons, *reasons),
        notes=(*verdict.notes, *notes),
        metrics=metrics,
    )
