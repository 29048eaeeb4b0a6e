"""A witness: cosigns a log's checkpoint only after checking that it extends the last one it cosigned.

A witness cosignature (c2sp.org/tlog-cosignature, signature type 0x04) is one more signature line on the
log's checkpoint note: the witness's Ed25519 signature over "cosignature/v1\\ntime <t>\\n" ‖ the checkpoint
text, prefixed by u64be(t). A witness never cosigns two inconsistent checkpoints of one log, so a reader who
requires cosignatures from witnesses it trusts cannot be shown a split view unless those witnesses were
shown it too and misbehaved. See docs/registry.md ("Split views, audits and witnesses").
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ModeldeedError
from .audit import audit_checkpoints
from .checkpoint import Checkpoint, CheckpointDocument, open_checkpoint
from .client import RegistryClient
from .logkey import load_signer_key
from .note import SIG_COSIGNATURE, Note, NoteError, SignerKey, VerifierKey


class WitnessRefusal(ModeldeedError):
    """The log's latest checkpoint does not extend the one the witness cosigned last: it is not cosigned."""


def cosign(note: bytes | str, witness: SignerKey, timestamp: int | None = None) -> bytes:
    """Add the witness's cosignature line to a signed checkpoint note."""
    if witness.sig_type != SIG_COSIGNATURE:
        raise NoteError("a witness key has signature type 0x04 (make one with `registry init-log --witness`)")
    parsed = Note.parse(note)
    stamp = int(time.time()) if timestamp is None else timestamp
    return Note(parsed.text, parsed.signatures + (witness.sign(parsed.text, timestamp=stamp),)).encode()


def cosign_latest(
    client: RegistryClient, log_key: VerifierKey, witness_key: str | Path, state: CheckpointDocument | None
) -> tuple[Checkpoint, CheckpointDocument]:
    """Fetch the log's latest checkpoint, check it against `state` (the last one cosigned), cosign it."""
    witness = load_signer_key(witness_key)
    latest_doc = client.latest_checkpoint()
    try:
        latest = open_checkpoint(latest_doc.note, log_key)
        previous = open_checkpoint(state.note, log_key) if state is not None else None
    except NoteError as exc:
        raise ModeldeedError(f"{client.base_url}: {exc}") from None
    if previous is not None:
        proof = client.consistency_proof(previous.size, latest.size) if latest.size >= previous.size else []
        problems = audit_checkpoints(previous, latest, proof)
        if problems:
            raise WitnessRefusal("; ".join(problems))
    return latest, CheckpointDocument.of(cosign(latest_doc.note, witness))
