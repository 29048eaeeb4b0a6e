"""Shared pieces of the registry tests: fixed keys (for golden vectors), a small in-memory tree of entries."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from modeldeed.registry import merkle
from modeldeed.registry.checkpoint import Checkpoint, sign_checkpoint
from modeldeed.registry.entry import Entry, format_time
from modeldeed.registry.identity import Identity
from modeldeed.registry.note import SIG_ED25519, SignerKey
from modeldeed.registry.receipt import Receipt, make_receipt

GOLDEN_ORIGIN = "registry.modeldeed.example/golden"
GOLDEN_TIME = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def fixed_seed(label: str) -> bytes:
    return hashlib.sha256(b"modeldeed test key: " + label.encode()).digest()


def golden_log_key() -> SignerKey:
    return SignerKey(GOLDEN_ORIGIN, SIG_ED25519, fixed_seed("log"))


def golden_identity() -> Identity:
    return Identity(fixed_seed("submitter"))


def golden_digest(i: int) -> str:
    return hashlib.sha256(f"artefact {i}".encode()).hexdigest()


def build_log(count: int, *, key: SignerKey | None = None) -> tuple[list[Entry], list[Receipt], dict]:
    """`count` entries by the golden identity, integrated one per batch; their receipts and node store."""
    key = key or golden_log_key()
    identity = golden_identity()
    tree, nodes, entries, receipts = merkle.CompactRange(), {}, [], []
    for index in range(count):
        sub = identity.submission("model" if index % 2 else "watermark-key", golden_digest(index))
        entry = Entry(index=index, integrated_time=format_time(GOLDEN_TIME), checkpoint_size=index + 1,
                      **sub.model_dump())  # fmt: skip
        nodes.update(tree.append(entry.leaf_hash()))
        signed = sign_checkpoint(Checkpoint(key.name, tree.size, tree.root()), key)
        proof = merkle.inclusion_proof(index, index + 1, lambda ids: [nodes[i] for i in ids])
        entries.append(entry)
        receipts.append(make_receipt(entry, proof, signed.note))
    return entries, receipts, nodes
