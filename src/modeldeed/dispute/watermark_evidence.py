"""Watermark evidence in a dispute: a verification key with its registration receipt, checked on the model.

Its entry in claim.json (`kind: "watermark"`):

    key             folder with verification_key.json (and verification_key.safetensors for cut-and-choose
                    keys); with marking_key.json and marking_key.safetensors for a check with the marking key;
                    with usage.json, the owner's record of reveals, for a bounded key
    receipt         the key's registration receipt (kind watermark-key)
    reveal          optional, bounded keys: a revealed set (reveal.json, reveal.safetensors), checked publicly
    reveal_receipt  optional: the reveal's registration receipt (kind watermark-reveal)

The judge runs the strongest check the files allow: a revealed set of a bounded key by public verification
(no secret needed); a cut-and-choose key by PVerify with its marking key (public half and hidden half); any
other key by private Verify with its marking key. The key's registration (by the claimant) is the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import ModeldeedError
from ..registry import Receipt, load_receipt
from ..registry.identity import fingerprint
from ..schema import Document
from ..watermark import (
    MarkingKey,
    RevealedSet,
    VerificationKey,
    load_marking_key,
    load_reveal,
    load_usage,
    load_verification_key,
    pverify,
    reveal_history,
    verify,
)
from ..watermark.keys import MK_FILE, MK_TENSORS, VK_FILE, VK_TENSORS
from ..watermark.registration import (
    KEY_RECEIPT_FILE,
    REVEAL_KIND,
    REVEAL_RECEIPT_FILE,
    bind_key,
    bind_reveal,
    key_digest,
    reveal_digest,
)
from ..watermark.reveal import REVEAL_FILE, REVEAL_TENSORS, USAGE_FILE
from .claim import ClaimFiles, RelativePath, copy_file
from .evidence import Artefact, DisputeContext, Evidence, EvidenceFinding, EvidenceSource, trigger_fingerprints


class WatermarkEvidenceDocument(Document):
    """The entry of a watermark item in claim.json (paths relative to the claim directory)."""

    kind: Literal["watermark"]
    key: RelativePath
    receipt: RelativePath
    reveal: RelativePath | None = None
    reveal_receipt: RelativePath | None = None


@dataclass(frozen=True, eq=False)
class WatermarkEvidence(Evidence):
    kind: ClassVar[str] = "watermark"
    document: ClassVar[type[Document]] = WatermarkEvidenceDocument

    verification_key: VerificationKey
    marking_key: MarkingKey | None
    receipt: Receipt
    reveal: RevealedSet | None
    reveal_receipt: Receipt | None
    usage: tuple[Any, ...]
    where: str

    @classmethod
    def load(cls, entry: Any, files: ClaimFiles) -> WatermarkEvidence:
        key_dir = files.path(entry.key, directory=True)
        files.path(f"{entry.key}/{VK_FILE}")
        vk = load_verification_key(key_dir)
        mk = load_marking_key(key_dir) if f"{entry.key}/{MK_FILE}" in files.listed else None
        usage = tuple(load_usage(key_dir, vk)) if f"{entry.key}/{USAGE_FILE}" in files.listed else ()
        reveal = load_reveal(files.path(entry.reveal, directory=True), vk) if entry.reveal else None
        if entry.reveal_receipt and reveal is None:
            raise ModeldeedError(f"{files.root}: a reveal receipt without a reveal")
        reveal_receipt = load_receipt(files.path(entry.reveal_receipt)) if entry.reveal_receipt else None
        return cls(vk, mk, load_receipt(files.path(entry.receipt)), reveal, reveal_receipt, usage, str(key_dir))

    def judge(self, context: DisputeContext) -> EvidenceFinding:
        vk, first = self.verification_key, context.first_appearance
        first_time = first.time if first is not None else None
        reasons: list[str] = []
        notes: list[str] = []
        artefacts = [Artefact("verification key", "watermark-key", key_digest(vk))]
        key = bind_key(vk, self.receipt, context.log_key, first_seen=first_time)
        registrations, receipts, anchor = [], [], None
        if key.registration is not None:
            registrations.append(key.registration)
            receipts.append(self.receipt)
            if key.registration.submitter_key == context.claimant_key:
                anchor = key.registration
            else:
                reasons.append(
                    f"the key's registration (entry {key.registration.index}) was submitted by "
                    f"{key.registration.fingerprint}, not by the claimant ({fingerprint(context.claimant_key)}): "
                    "receipts are public, so a registration counts only for the key that made it"
                )
        reasons += key.reasons
        notes += key.notes
        if vk.demonstration:
            reasons.append("a demonstration key: its secrets follow from a public seed, so anyone can remake it")
        if vk.label_kind == "chosen" and first is None:
            reasons.append(
                "the key's labels were chosen by its maker, and the model's first appearance is not known: nothing "
                "shows that the labels were not read off the model (give --first-seen or the model's registration)"
            )
        if vk.label_kind == "chosen" and context.reference_model is None:
            reasons.append(
                "the key's labels were chosen by its maker, so its triggers may be natural images with their true "
                "classes, which any good model recognises, registered before any model existed; only a reference "
                "model trained on the data without the key can tell (give --reference MODEL)"
            )
        registered = anchor.sentence() if anchor is not None else None
        datasets = [context.data.train, context.data.test]
        if self.reveal is not None:
            check = f"public verification of revealed set {self.reveal.set_index} of {vk.sets}"
            artefacts.append(Artefact("reveal", REVEAL_KIND, reveal_digest(self.reveal)))
            history = reveal_history(vk, usage=self.usage)
            verdict = pverify(vk, context.model, reveal=self.reveal, data=datasets, test_data=context.data.test,
                              reference_model=context.reference_model, history=history, first_seen=first_time,
                              registered=registered)  # fmt: skip
            if first is None:
                reasons.append(
                    f"the model's first appearance is not known, so it cannot be shown that the model existed before "
                    f"set {self.reveal.set_index} was revealed (anyone may fit a model to a public set)"
                )
            if self.reveal_receipt is not None:
                bound = bind_reveal(self.reveal, self.reveal_receipt, context.log_key, first_seen=first_time)
                reasons += bound.reasons
                notes += bound.notes
                if bound.registration is not None:
                    registrations.append(bound.registration)
                    receipts.append(self.reveal_receipt)
        elif self.marking_key is None:
            raise ModeldeedError(
                f"{self.where}: neither a marking key nor a reveal: nothing to check the model against"
            )
        elif vk.scheme == "cut-and-choose":
            check = "public half and hidden half (with the marking key) of a cut-and-choose key"
            verdict = pverify(vk, context.model, marking_key=self.marking_key, data=datasets,
                              test_data=context.data.test, reference_model=context.reference_model,
                              registered=registered)  # fmt: skip
        else:
            check = f"private verification of a {vk.scheme} key with its marking key"
            verdict = verify(self.marking_key, vk, context.model, test_data=context.data.test, data=datasets,
                             reference_model=context.reference_model, registered=registered)  # fmt: skip
        revealed, revealed_at = frozenset(), None
        if self.reveal is not None:
            triggers = revealed = trigger_fingerprints(self.reveal.opening.images)
            revealed_at = bound.registration if self.reveal_receipt is not None else None
        else:
            triggers = trigger_fingerprints(self.marking_key.images)
        reasons += [f"verification: {reason}" for reason in verdict.reasons]
        notes += verdict.notes
        if verdict.chance_log2 is not None and verdict.chance_log2 > -context.min_security_bits:
            reasons.append(
                f"a model that never saw these triggers passes with probability 2^{verdict.chance_log2:.1f}, more "
                f"than the 2^-{context.min_security_bits:g} a dispute requires (many small keys registered early "
                "would let someone claim any model by luck)"
            )
        summary = (
            f"{vk.scheme} watermark key {vk.key_id[:16]}… ({vk.label_kind} labels): {check}; "
            f"{verdict.agreements} of {verdict.triggers} triggers agree, {verdict.threshold} needed"
        )
        return EvidenceFinding(
            kind=self.kind,
            summary=summary,
            verified=verdict.accepted,
            reasons=tuple(reasons),
            notes=tuple(dict.fromkeys(notes)),
            artefacts=tuple(artefacts),
            registrations=tuple(registrations),
            anchor=anchor,
            receipts=tuple(receipts),
            details={"check": check, **verdict.to_json()},
            triggers=triggers,
            revealed=revealed,
            revealed_at=revealed_at,
        )


@dataclass(frozen=True)
class WatermarkSource(EvidenceSource):
    """A claimant's watermark evidence: a key directory, its receipt, optionally a reveal and its receipt.

    The marking key is copied for keys checked privately; a bounded key with a reveal is checked publicly,
    and its marking key (which would open every set) stays with the owner.
    """

    kind: ClassVar[str] = "watermark"
    key_dir: str
    receipt: str | None = None  # default: the key directory's verification_key.receipt.json
    reveal_dir: str | None = None
    reveal_receipt: str | None = None  # default: the reveal directory's reveal.receipt.json, if present

    def write(self, directory: Path, prefix: str, claimant_key: str) -> dict[str, Any]:
        key_dir = Path(self.key_dir)
        vk = load_verification_key(key_dir)
        receipt_path = Path(self.receipt) if self.receipt else key_dir / KEY_RECEIPT_FILE
        if not receipt_path.is_file():
            raise ModeldeedError(
                f"{receipt_path}: no receipt for this key (register it: `watermark keygen --registry` or `registry "
                "publish`); an unregistered key proves nothing in a dispute"
            )
        receipt = load_receipt(receipt_path)
        entry = receipt.entry
        if (entry.kind, entry.digest) != ("watermark-key", key_digest(vk)):
            raise ModeldeedError(f"{receipt_path}: is not the registration of the key in {key_dir}")
        if entry.submitter_key != claimant_key:
            raise ModeldeedError(
                f"{receipt_path}: was submitted by {fingerprint(entry.submitter_key)}, not by your identity "
                f"({fingerprint(claimant_key)}); a registration counts only for the key that made it"
            )
        reveal = load_reveal(self.reveal_dir, vk) if self.reveal_dir else None
        if reveal is None and vk.scheme == "bounded" and not (key_dir / MK_FILE).exists():
            raise ModeldeedError(f"{key_dir}: a bounded key is checked with a reveal (--reveal) or its marking key")
        target = Path(directory) / prefix
        names = [VK_FILE, VK_TENSORS, USAGE_FILE]
        if reveal is None:
            names += [MK_FILE, MK_TENSORS]
        for name in names:
            if (key_dir / name).exists():
                copy_file(key_dir / name, target / "key" / name, within=key_dir)
        copy_file(receipt_path, target / "key.receipt.json", within=receipt_path.parent)
        result: dict[str, Any] = {"kind": self.kind, "key": f"{prefix}/key", "receipt": f"{prefix}/key.receipt.json"}
        if reveal is not None and self.reveal_dir:
            reveal_dir = Path(self.reveal_dir)
            for name in (REVEAL_FILE, REVEAL_TENSORS):
                copy_file(reveal_dir / name, target / "reveal" / name, within=reveal_dir)
            result["reveal"] = f"{prefix}/reveal"
            reveal_receipt = Path(self.reveal_receipt) if self.reveal_receipt else reveal_dir / REVEAL_RECEIPT_FILE
            if self.reveal_receipt or reveal_receipt.is_file():
                found = load_receipt(reveal_receipt).entry
                if (found.kind, found.digest) != (REVEAL_KIND, reveal.reveal_id):
                    raise ModeldeedError(f"{reveal_receipt}: is not the registration of the reveal in {reveal_dir}")
                copy_file(reveal_receipt, target / "reveal.receipt.json", within=reveal_receipt.parent)
                result["reveal_receipt"] = f"{prefix}/reveal.receipt.json"
        return result
