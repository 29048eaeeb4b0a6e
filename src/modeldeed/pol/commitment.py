"""The owner's training statement: a Merkle root over the exact training samples and a commitment to the seed.

Made BEFORE training and published (a time-stamped board is a later step), it binds the owner to the data
and to the seed from which the initial weights and the batch order follow. A spoofer who only holds the
final weights can then neither train on modified samples nor pick W0 by the sort trick: the hardened
verifier checks every replayed sample against the root and recomputes W0 and the batch order from the seed.

    seed commitment = SHA-256("modeldeed/pol-seed/v1" ‖ 0x00 ‖ u64be(seed) ‖ nonce),  nonce = 32 bytes from `secrets`

The statement's id is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto import tagged_digest
from ..data import Dataset
from ..errors import FormatError
from ..files import canonical_json, read_json_object, sha256_bytes, write_json_atomic
from ..validation import Fields
from .merkle import MerkleTree

STATEMENT_FORMAT = "modeldeed.pol-statement"
OPENING_FORMAT = "modeldeed.pol-seed-opening"
SEED_TAG = b"modeldeed/pol-seed/v1"
NONCE_BYTES = 32
_HEX = r"[0-9a-f]{64}"


def seed_commitment(seed: int, nonce: bytes) -> bytes:
    if not 0 <= seed < 2**64:
        raise ValueError(f"a committed seed must lie in [0, 2**64), got {seed}")
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    return tagged_digest(SEED_TAG, seed.to_bytes(8, "big") + nonce)


@dataclass(frozen=True)
class SeedOpening:
    """What opens the statement's seed commitment: the seed and the nonce (the proof carries it)."""

    seed: int
    nonce: str  # 64 hex digits

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "nonce": self.nonce}

    @classmethod
    def from_fields(cls, fields: Fields) -> SeedOpening:
        return cls(fields.int("seed", minimum=0, maximum=2**64 - 1), fields.str("nonce", pattern=_HEX))


@dataclass(frozen=True)
class TrainingStatement:
    """What the owner commits to before training. Small: a root, a count, a shape and a commitment."""

    dataset: str
    samples: int
    sample_shape: tuple[int, int, int]
    merkle_root: str
    seed_commitment: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATEMENT_FORMAT,
            "version": 1,
            "dataset": self.dataset,
            "samples": self.samples,
            "sample_shape": list(self.sample_shape),
            "merkle_root": self.merkle_root,
            "seed_commitment": self.seed_commitment,
        }

    @property
    def id(self) -> str:
        return sha256_bytes(canonical_json(self.to_json()))

    @classmethod
    def from_json(cls, doc: Any, source: str | Path) -> TrainingStatement:
        fields = Fields(doc, source)
        fields.expect_format(STATEMENT_FORMAT)
        shape = fields.int_list("sample_shape", length=3, minimum=1)
        return cls(
            fields.str("dataset"),
            fields.int("samples", minimum=0),
            (shape[0], shape[1], shape[2]),
            fields.hex64("merkle_root"),
            fields.hex64("seed_commitment"),
        )

    def opens(self, opening: SeedOpening) -> bool:
        """True iff (seed, nonce) opens this statement's seed commitment (compared in constant time)."""
        try:
            expected = seed_commitment(opening.seed, bytes.fromhex(opening.nonce))
        except ValueError:
            return False
        return hmac.compare_digest(expected.hex(), self.seed_commitment)


@dataclass(frozen=True)
class CarriedStatement:
    """What a proof carries (proof.json field `statement`): the owner's statement and its seed opening."""

    statement: TrainingStatement
    opening: SeedOpening

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement.to_json(), "opening": self.opening.to_json()}

    @classmethod
    def from_fields(cls, fields: Fields) -> CarriedStatement:
        statement = TrainingStatement.from_json(fields.object("statement").obj, f"{fields.source} ({fields.prefix})")
        return cls(statement, SeedOpening.from_fields(fields.object("opening")))


def dataset_root(data: Dataset) -> str:
    """The Merkle root (hex) over the exact samples of `data`, in dataset order."""
    return MerkleTree.from_samples(data.x, data.y).root.hex()


def make_statement(data: Dataset, seed: int, *, nonce: bytes | None = None) -> tuple[TrainingStatement, SeedOpening]:
    """The owner's statement for training on `data` from `seed`, and the opening to keep for the proof."""
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    statement = TrainingStatement(
        data.name, len(data), data.input_shape, dataset_root(data), seed_commitment(seed, nonce).hex()
    )
    return statement, SeedOpening(seed, nonce.hex())


def save_opening(path: str | Path, opening: SeedOpening) -> Path:
    path = Path(path)
    write_json_atomic(path, {"format": OPENING_FORMAT, "version": 1, **opening.to_json()})
    return path


def load_opening(path: str | Path) -> SeedOpening:
    path = Path(path)
    fields = Fields(read_json_object(path), path)
    fields.expect_format(OPENING_FORMAT)
    return SeedOpening.from_fields(fields)


def save_statement(path: str | Path, statement: TrainingStatement) -> Path:
    path = Path(path)
    write_json_atomic(path, statement.to_json())
    return path


def load_statement(path: str | Path) -> TrainingStatement:
    path = Path(path)
    try:
        return TrainingStatement.from_json(read_json_object(path), path)
    except FormatError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - Fields reports every field problem itself
        raise FormatError(f"{path}: not a training statement ({exc})") from None
