"""A tiny log made in memory with fixed keys, for the receipt target's seeds and its verifier key."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from modeldeed.registry import merkle
from modeldeed.registry.checkpoint import Checkpoint, sign_checkpoint
from modeldeed.registry.entry import Entry, format_time
from modeldeed.registry.identity import Identity
from modeldeed.registry.note import SIG_ED25519, SignerKey
from modeldeed.registry.receipt import Receipt, make_receipt

TIME = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def seed(label: str) -> bytes:
    return hashlib.sha256(b"modeldeed fuzz key: " + label.encode()).digest()


LOG_KEY = SignerKey("registry.modeldeed.example/fuzz", SIG_ED25519, seed("log"))


def receipts(count: int = 4) -> list[Receipt]:
    identity = Identity(seed("submitter"))
    tree, nodes, out = merkle.CompactRange(), {}, []
    for index in range(count):
        digest = hashlib.sha256(f"artefact {index}".encode()).hexdigest()
        sub = identity.submission("model" if index % 2 else "watermark-key", digest)
        entry = Entry(index=index, integrated_time=format_time(TIME), checkpoint_size=index + 1, **sub.model_dump())
        nodes.update(tree.append(entry.leaf_hash()))
        signed = sign_checkpoint(Checkpoint(LOG_KEY.name, tree.size, tree.root()), LOG_KEY)
        proof = merkle.inclusion_proof(index, index + 1, lambda ids: [nodes[i] for i in ids])
        out.append(make_receipt(entry, proof, signed.note))
    return out
