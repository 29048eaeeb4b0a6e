"""Receipts: an entry, its inclusion proof and the signed checkpoint that first included it.

A receipt verifies offline with nothing but the log's public key: the checkpoint's signature, the
submitter's signature over (kind, digest), and the RFC 6962 audit path from the entry's leaf hash to the
checkpoint's root. The checkpoint is always the *integration* checkpoint (tree size = the entry's
`checkpoint_size`, which the leaf itself covers), so a receipt has exactly one valid form per registration.

The registration beacon is a hash of that signed checkpoint's exact bytes. What it is for, and why nobody
can predict or grind it, is in docs/registry.md ("The registration beacon").
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from ..crypto import tagged_digest
from ..files import write_bytes_atomic
from ..schema import Document, Hex64, NonNegative, Positive, load_document
from . import merkle
from .checkpoint import Checkpoint, NoteText, open_checkpoint
from .entry import Entry
from .note import Note, NoteError, VerifierKey

log = logging.getLogger(__name__)

BEACON_TAG = b"modeldeed/registry/beacon/v1"
MAX_RECEIPT_BYTES = 256 << 10
ProofHashes = Annotated[list[Hex64], Field(max_length=64)]


class InclusionProof(Document):
    leaf_index: NonNegative
    tree_size: Positive
    hashes: ProofHashes


class Receipt(Document):
    format: Literal["modeldeed.registry-receipt"]
    version: Literal[1]
    entry: Entry
    inclusion_proof: InclusionProof
    checkpoint: NoteText


@dataclass(frozen=True)
class ReceiptVerdict:
    """What a receipt proves, or every reason it proves nothing. `integrated_time` is UTC."""

    valid: bool
    reasons: tuple[str, ...]
    entry: Entry
    index: int
    integrated_time: datetime
    checkpoint: Checkpoint | None


def make_receipt(entry: Entry, proof: list[bytes], checkpoint_note: bytes) -> Receipt:
    return Receipt(
        format="modeldeed.registry-receipt",
        version=1,
        entry=entry,
        inclusion_proof=InclusionProof(
            leaf_index=entry.index, tree_size=entry.checkpoint_size, hashes=[h.hex() for h in proof]
        ),  # fmt: skip
        checkpoint=checkpoint_note.decode(),
    )


def verify_receipt(receipt: Receipt, log_key: VerifierKey) -> ReceiptVerdict:
    """Check a receipt against the log's public key alone. Every failed check is named in `reasons`."""
    entry, proof = receipt.entry, receipt.inclusion_proof
    reasons: list[str] = []
    checkpoint: Checkpoint | None = None
    try:
        checkpoint = open_checkpoint(receipt.checkpoint, log_key)
        if len(Note.parse(receipt.checkpoint).signatures) != 1:
            checkpoint = None
            reasons.append(
                "checkpoint: a receipt carries the log's checkpoint exactly as the log signed it, with one "
                "signature line (extra lines would give one registration many beacons)"
            )
    except NoteError as exc:
        reasons.append(f"checkpoint: {exc}")
    if not entry.submission.signature_valid():
        reasons.append("entry: the submitter's signature over (kind, digest) does not verify (edited entry?)")
    if proof.leaf_index != entry.index:
        reasons.append(f"inclusion proof: it is for leaf {proof.leaf_index}, the entry has index {entry.index}")
    if proof.tree_size != entry.checkpoint_size:
        reasons.append(
            f"inclusion proof: it is against tree size {proof.tree_size}, "
            f"the entry was integrated at checkpoint size {entry.checkpoint_size}"
        )
    if checkpoint is not None:
        if checkpoint.size != entry.checkpoint_size:
            reasons.append(
                f"checkpoint: its tree size is {checkpoint.size}, the entry's integration checkpoint is "
                f"{entry.checkpoint_size} (a receipt carries the checkpoint that first included the entry)"
            )
        hashes = [bytes.fromhex(h) for h in proof.hashes]
        if not merkle.verify_inclusion(proof.leaf_index, checkpoint.size, entry.leaf_hash(), hashes, checkpoint.root):
            reasons.append("inclusion proof: the entry's leaf hash does not lead to the checkpoint's root hash")
    if reasons:
        log.info("receipt for entry %d rejected: %s", entry.index, "; ".join(reasons))
    return ReceiptVerdict(not reasons, tuple(reasons), entry, entry.index, entry.time, checkpoint)


def registration_beacon(receipt: Receipt) -> bytes:
    """SHA-256(tag ‖ 0x00 ‖ the integration checkpoint's signed-note bytes, signature included).

    Only meaningful for a receipt that `verify_receipt` accepted: then it is the one beacon this
    registration has, fixed by the log's signature, and unknown to anyone before the log integrated the
    entry. Use it to derive challenges that must not be chosen by the party being challenged.

    The note must have exactly one signature line (as `verify_receipt` requires): a note with further
    lines, which a signed-note reader would otherwise ignore, would let a prover append lines until the
    beacon suited him.
    """
    note = Note.parse(receipt.checkpoint)
    if len(note.signatures) != 1:
        raise NoteError("a receipt's checkpoint must carry exactly one signature line, the log's")
    return tagged_digest(BEACON_TAG, note.encode())


def load_receipt(path: str | Path) -> Receipt:
    return load_document(Receipt, path, max_bytes=MAX_RECEIPT_BYTES)


def receipt_text(receipt: Receipt) -> str:
    """The receipt file's text: indented JSON, sorted keys, UTF-8 (verification never depends on the layout)."""
    return json.dumps(receipt.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def save_receipt(path: str | Path, receipt: Receipt) -> None:
    write_bytes_atomic(path, receipt_text(receipt).encode())
