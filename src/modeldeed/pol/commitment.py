"""The proof commitment: one Merkle root over a proof's checkpoints and step records, and nothing else.

The verifier's challenge (which intervals it replays) must not be something the prover can re-roll for
free. It is derived from this root (and, once the commitment is registered, from the registry's beacon),
never from proof.json as a whole: free-form fields (the environment record, the modeldeed version), the
checkpoints' compression (keyframes, deltas, zstd level) and file names do not enter it, so changing them
changes nothing. What enters it is what the replay checks: the exact training state at every checkpoint
and the exact step records between them.

Leaves, in this order (2N + 1 for N intervals): checkpoint 0, the steps of interval 0, checkpoint 1, ...,
the steps of interval N-1, checkpoint N. So leaf 2i is checkpoint i and leaf 2i + 1 the steps of interval i:

    checkpoint leaf = SHA-256("modeldeed/pol-checkpoint/v1" ‖ 0x00 ‖ u64be(i) ‖ u64be(step) ‖ D_model ‖ D_other)
    steps leaf      = SHA-256("modeldeed/pol-steps/v1" ‖ 0x00 ‖ u64be(i) ‖ u64be(first) ‖ u64be(end) ‖ enc(step)...)
    enc(step)       = u64be(t) ‖ u32be(n) ‖ u64be(index)×n ‖ u32be(m) ‖ u64be(stored)×m ‖ batch SHA-256 (32 bytes)
                      ‖ lr (IEEE 754 binary64, big-endian) ‖ (0x00 | 0x01 ‖ u64be(augment seed))

D_model and D_other are `pol.state.tensor_digest` of the checkpoint's model tensors and of the rest. The tree
is `pol.merkle.MerkleTree` (its node hash; an odd last node is promoted). The commitment document adds the
counts, the SHA-256 of the proof's header (every setting) and the statement's id; its own id (SHA-256 of its
canonical JSON) is what a registry logs. Format: docs/formats.md ("Proof commitment").
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ..crypto import tagged_digest
from ..errors import FormatError, ModeldeedError, file_error
from ..files import canonical_json, sha256_bytes, write_json_atomic
from ..schema import Document, Hex64, load_document
from .merkle import MerkleTree
from .proof import MAX_STEPS, Proof, StepRecord, checkpoint_steps, load_proof
from .state import state_digests
from .store import ProofStore

log = logging.getLogger(__name__)

COMMITMENT_FORMAT = "modeldeed.pol-commitment"
CHECKPOINT_LEAF_TAG = b"modeldeed/pol-checkpoint/v1"
STEPS_LEAF_TAG = b"modeldeed/pol-steps/v1"
MAX_COMMITMENT_BYTES = 1 << 16


def encode_step(step: int, record: StepRecord) -> bytes:
    """The canonical bytes of one step record."""
    indices = record.indices.astype(">u8").tobytes()
    stored = b"".join(int(n).to_bytes(8, "big") for n in record.stored)
    seed = b"\x00" if record.augment_seed is None else b"\x01" + int(record.augment_seed).to_bytes(8, "big")
    return (
        step.to_bytes(8, "big")
        + len(record.indices).to_bytes(4, "big")
        + indices
        + len(record.stored).to_bytes(4, "big")
        + stored
        + bytes.fromhex(record.batch_sha256)
        + struct.pack(">d", record.lr)
        + seed
    )


def steps_leaf(interval: int, first: int, records: Sequence[StepRecord]) -> bytes:
    """The leaf of interval `interval`'s step records (steps first .. first + len(records) - 1)."""
    end = first + len(records)
    body = interval.to_bytes(8, "big") + first.to_bytes(8, "big") + end.to_bytes(8, "big")
    return tagged_digest(STEPS_LEAF_TAG, body + b"".join(encode_step(first + i, r) for i, r in enumerate(records)))


def checkpoint_leaf(index: int, step: int, model_digest: bytes, other_digest: bytes) -> bytes:
    return tagged_digest(
        CHECKPOINT_LEAF_TAG, index.to_bytes(8, "big") + step.to_bytes(8, "big") + model_digest + other_digest
    )


def checkpoint_position(index: int) -> int:
    return 2 * index


def steps_position(interval: int) -> int:
    return 2 * interval + 1


def leaf_count(intervals: int) -> int:
    return 2 * intervals + 1


class ProofCommitment(Document):
    """What a prover publishes (and registers) before the verifier's challenge: small, whatever T is."""

    format: Literal["modeldeed.pol-commitment"] = COMMITMENT_FORMAT
    version: Literal[1] = 1
    root: Hex64
    intervals: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    total_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    checkpoint_every: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    header_sha256: Hex64
    statement_id: Hex64 | None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def id(self) -> str:
        """SHA-256 of the canonical JSON: the digest a registry entry of kind pol-commitment carries."""
        return sha256_bytes(canonical_json(self.to_json()))

    def consistency_problems(self) -> list[str]:
        """The counts must describe checkpoints at 0, k, 2k, ..., T."""
        expected = len(checkpoint_steps(self.total_steps, self.checkpoint_every)) - 1
        if expected != self.intervals:
            return [
                f"{self.intervals} intervals, but {self.total_steps} steps with a checkpoint every "
                f"{self.checkpoint_every} make {expected}"
            ]
        return []


def commitment_leaves(proof: Proof, digests: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """The 2N + 1 leaves of a full proof, from each checkpoint's (D_model, D_other)."""
    checkpoints = proof.checkpoints
    if len(digests) != len(checkpoints):
        raise ValueError("one digest pair per checkpoint")
    leaves = []
    for i, entry in enumerate(checkpoints):
        leaves.append(checkpoint_leaf(i, entry.step, *digests[i]))
        if i + 1 < len(checkpoints):
            end = checkpoints[i + 1].step
            leaves.append(steps_leaf(i, entry.step, proof.steps[entry.step : end]))
    return leaves


def make_commitment(proof: Proof, digests: Sequence[tuple[bytes, bytes]]) -> tuple[ProofCommitment, MerkleTree]:
    """The commitment of a full proof (whose checkpoints hash to `digests`) and its Merkle tree."""
    if len(proof.checkpoints) < 2:
        raise ModeldeedError("a proof needs at least one interval to be committed to")
    tree = MerkleTree(commitment_leaves(proof, digests))
    header = proof.header
    statement = header.statement.statement.id if header.statement is not None else None
    commitment = ProofCommitment(
        root=tree.root.hex(),
        intervals=len(proof.checkpoints) - 1,
        total_steps=proof.total_steps,
        checkpoint_every=header.checkpoint_every,
        header_sha256=header.digest(),
        statement_id=statement,
    )
    return commitment, tree


def checkpoint_digests(store: ProofStore) -> list[tuple[bytes, bytes]]:
    """(D_model, D_other) of every checkpoint, in order (each file hash-checked and decoded)."""
    return [state_digests(store.checkpoint(i)) for i in range(len(store.proof.checkpoints))]


def commit_proof(directory: str | Path, *, trust_code: bool = False) -> tuple[ProofCommitment, MerkleTree]:
    """The commitment of the proof in `directory`: `modeldeed pol commit-proof`."""
    proof, _ = load_proof(directory)
    steps = [c.step for c in proof.checkpoints]
    if steps != checkpoint_steps(proof.total_steps, proof.header.checkpoint_every):
        raise file_error(
            FormatError, Path(directory) / "proof.json", "checkpoints are not at steps 0, k, 2k, ... and T"
        )
    return make_commitment(proof, checkpoint_digests(ProofStore(directory, proof, trust_code=trust_code)))


def save_commitment(path: str | Path, commitment: ProofCommitment) -> None:
    write_json_atomic(path, commitment.to_json())


def load_commitment(path: str | Path) -> ProofCommitment:
    commitment = load_document(ProofCommitment, path, max_bytes=MAX_COMMITMENT_BYTES)
    problems = commitment.consistency_problems()
    if problems:
        raise file_error(FormatError, path, problems[0])
    return commitment
