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


def build_log(
    count: int, *, key: SignerKey | None = None, first_digest: int = 0
) -> tuple[list[Entry], list[Receipt], dict]:
    """`count` entries by the golden identity, integrated one per batch; their receipts and node store."""
    key = key or golden_log_key()
    identity = golden_identity()
    tree, nodes, entries, receipts = merkle.CompactRange(), {}, [], []
    for index in range(count):
        sub = identity.submission("model" if index % 2 else "watermark-key", golden_digest(first_digest + index))
        entry = Entry(index=index, integrated_time=format_time(GOLDEN_TIME), checkpoint_size=index + 1,
                      **sub.model_dump())  # fmt: skip
        nodes.update(tree.append(entry.leaf_hash()))
        signed = sign_checkpoint(Checkpoint(key.name, tree.size, tree.root()), key)
        proof = merkle.inclusion_proof(index, index + 1, lambda ids: [nodes[i] for i in ids])
        entries.append(entry)
        receipts.append(make_receipt(entry, proof, signed.note))
    return entries, receipts, nodes


def golden_vectors() -> dict[str, str]:
    """The byte-exact examples of docs/formats.md ("Registry"), made from the fixed keys above.

    Three entries by one submitter integrated in one batch (tree size 3); the receipt is entry 1's.
    """
    from modeldeed.registry.entry import submission_message
    from modeldeed.registry.receipt import receipt_text, registration_beacon

    key, identity = golden_log_key(), golden_identity()
    tree, nodes, entries = merkle.CompactRange(), {}, []
    for index in range(3):
        sub = identity.submission("watermark-key" if index == 1 else "model", golden_digest(index))
        entry = Entry(index=index, integrated_time=format_time(GOLDEN_TIME), checkpoint_size=3, **sub.model_dump())
        nodes.update(tree.append(entry.leaf_hash()))
        entries.append(entry)
    signed = sign_checkpoint(Checkpoint(key.name, tree.size, tree.root()), key)
    proof = merkle.inclusion_proof(1, 3, lambda ids: [nodes[i] for i in ids])
    receipt = make_receipt(entries[1], proof, signed.note)
    entry = entries[1]
    return {
        "log-verifier-key": f"{key.verifier()}\n",
        "submitter": f"public key: {identity.public_key}\nfingerprint: {identity.fingerprint}\n",
        "submission-message": submission_message(entry.kind, bytes.fromhex(entry.digest)).hex() + "\n",
        "leaf": f"leaf data: {entry.leaf_data().hex()}\nleaf hash: {entry.leaf_hash().hex()}\n",
        "checkpoint": signed.note.decode(),
        "receipt": receipt_text(receipt),
        "beacon": registration_beacon(receipt).hex() + "\n",
    }
