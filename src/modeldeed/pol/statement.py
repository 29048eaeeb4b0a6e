"""The owner's training statement: every setting of a training run, fixed before the run starts.

A proof of learning is only as strong as what its prover could not choose after the fact. The statement
binds the architecture and its arguments, the initialisation scheme, a commitment to the seed (from which
W_0, the batch order and the run's RNG follow), every hyper-parameter (the whole `TrainConfig` but the
seed), the checkpoint interval k, the dataset (size, shape, classes and a Merkle root over its exact
samples), optionally the set of trained parameters (default: all of them) and, for a watermarked run, the
trigger samples that will be appended to batches (a Merkle root, their count and the verification key id).
Made and registered before training, it leaves a spoofer holding only W_T nothing to pick: the hardened
verifier rejects a proof whose settings differ from the statement's in any way.

    seed commitment = SHA-256("modeldeed/pol-seed/v1" ‖ 0x00 ‖ u64be(seed) ‖ nonce),  nonce: 32 bytes from `secrets`

The statement's id is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8): what a registry logs.
Format: docs/formats.md ("Training statement").
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from ..crypto import tagged_digest
from ..data import Dataset
from ..errors import FormatError, ModeldeedError, file_error
from ..files import canonical_json, sha256_bytes, write_json_atomic
from ..models import ModelSpec
from ..models.arguments import check_arguments
from ..schema import U64, Document, Hex64, Name, Positive, load_document, validate_document
from ..training import TrainConfig
from .loop import LoopDoc
from .merkle import MerkleTree, streaming_root
from .settings import config_from_json

STATEMENT_FORMAT = "modeldeed.pol-statement"
STATEMENT_VERSION = 2
OPENING_FORMAT = "modeldeed.pol-seed-opening"
STATEMENT_FILE = "statement.json"
OPENING_FILE = "opening.json"
SEED_TAG = b"modeldeed/pol-seed/v1"
NONCE_BYTES = 32
INITIALISATION_SCHEMES = ("pytorch-default", "kaiming-normal", "unspecified")
MAX_STATEMENT_BYTES = 4 << 20

Shape = Annotated[list[Annotated[int, Field(ge=1, le=1 << 20)]], Field(min_length=3, max_length=3)]
ParameterName = Annotated[str, Field(min_length=1, max_length=512)]


def seed_commitment(seed: int, nonce: bytes) -> bytes:
    if not 0 <= seed < 2**64:
        raise ValueError(f"a committed seed must lie in [0, 2**64), got {seed}")
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    return tagged_digest(SEED_TAG, seed.to_bytes(8, "big") + nonce)


class SeedOpening(Document):
    """What opens the statement's seed commitment: the seed and the nonce (a finished proof carries it)."""

    seed: U64
    nonce: Hex64


class SeedOpeningFile(SeedOpening):
    """`opening.json` of `pol commit`: the opening with its format tag (keep it until the proof is published)."""

    format: Literal["modeldeed.pol-seed-opening"] = OPENING_FORMAT
    version: Literal[1] = 1


class StatementModel(Document):
    architecture: Name
    arguments: dict[str, Any]


class StatementInitialisation(Document):
    """How W_0 is made: drawn by `scheme` from the committed seed, or, when `weights` is set, loaded from a file
    whose model tensors have that digest (`pol.state.initial_weights_digest`; the seed then makes only the RNG
    and batch order). A proof from given weights proves the training from them, not from scratch."""

    scheme: Literal["pytorch-default", "kaiming-normal", "unspecified"]
    weights: Hex64 | None = None


class StatementDataset(Document):
    name: Name
    size: Positive
    input_shape: Shape
    num_classes: Positive
    merkle_root: Hex64


class StatementTriggers(Document):
    """The watermark's trigger samples (images and labels, in the keys' marking order) appended to batches."""

    merkle_root: Hex64
    count: Annotated[int, Field(ge=1, le=1 << 24)]
    key_ids: Annotated[list[Hex64], Field(min_length=1, max_length=64)]


class TrainingStatement(Document):
    """What the owner commits to before training (format `modeldeed.pol-statement`, version 2)."""

    format: Literal["modeldeed.pol-statement"] = STATEMENT_FORMAT
    version: Literal[2] = STATEMENT_VERSION
    model: StatementModel
    initialisation: StatementInitialisation
    seed_commitment: Hex64
    training: dict[str, Any]  # every TrainConfig field except the (committed) seed
    checkpoint_every: Annotated[int, Field(ge=1, le=1 << 40)]
    dataset: StatementDataset
    trained_parameters: Annotated[list[ParameterName], Field(min_length=1, max_length=1 << 20)] | None = None
    triggers: StatementTriggers | None = None
    loop: LoopDoc | None = None  # a user's own step, optimizer, schedule, accumulation and clipping (`pol.own`)

    def to_json(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        if doc["loop"] is None:  # absent, so that statements of modeldeed's own loop keep their ids
            del doc["loop"]
        if doc["initialisation"]["weights"] is None:  # absent: statements of seeded W_0 keep their ids
            del doc["initialisation"]["weights"]
        return doc

    @property
    def id(self) -> str:
        return sha256_bytes(canonical_json(self.to_json()))

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.model.architecture, dict(self.model.arguments))

    def config(self, seed: int, source: str | Path = "training statement") -> TrainConfig:
        """The statement's training settings with the (opened) seed."""
        return config_from_json(self.training, source, "training", seed=seed)

    def opens(self, opening: SeedOpening) -> bool:
        """True iff (seed, nonce) opens this statement's seed commitment (compared in constant time)."""
        try:
            expected = seed_commitment(opening.seed, bytes.fromhex(opening.nonce))
        except ValueError:
            return False
        return hmac.compare_digest(expected.hex(), self.seed_commitment)


class CarriedStatement(Document):
    """What a proof carries (proof.json field `statement`): the owner's statement and its seed opening."""

    statement: TrainingStatement
    opening: SeedOpening

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class TriggerSet:
    """Trigger samples a watermarking hook appends to batches, committed to in the statement."""

    x: torch.Tensor  # M x C x H x W float32
    y: torch.Tensor  # M int64
    key_ids: tuple[str, ...]  # the verification keys the triggers belong to

    def root(self) -> str:
        return MerkleTree.from_samples(self.x, self.y).root.hex()


def dataset_root(data: Dataset) -> str:
    """The Merkle root (hex) over the exact samples of `data`, in dataset order, in one streaming pass (memory
    bounded by a chunk of samples: a memory-mapped dataset is read once, never held)."""
    return streaming_root(data.x, data.y).hex()


def training_settings(config: TrainConfig) -> dict[str, Any]:
    """Every TrainConfig field but the seed, as the statement's `training` object holds them."""
    doc = config.to_json()
    doc.pop("seed")
    return doc


def make_statement(
    data: Dataset,
    config: TrainConfig,
    spec: ModelSpec,
    *,
    checkpoint_every: int,
    trained_parameters: list[str] | None = None,
    triggers: TriggerSet | None = None,
    initialisation: str = "pytorch-default",
    nonce: bytes | None = None,
    loop: LoopDoc | None = None,
    initial_weights: str | None = None,
) -> tuple[TrainingStatement, SeedOpening]:
    """The owner's statement for training `spec` on `data` with `config` (its seed is committed, not shown).

    Returns the statement (public: register it before training) and the seed opening (keep it; the
    finished proof carries it). `initial_weights`: the digest of W_0's model tensors when training starts from
    a weights file (`pol.state.initial_weights_digest`), committed instead of deriving W_0 from the seed.
    """
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    statement = TrainingStatement(
        model=StatementModel(architecture=spec.architecture, arguments=dict(spec.arguments)),
        initialisation=StatementInitialisation(scheme=initialisation, weights=initial_weights),  # type: ignore[arg-type]
        seed_commitment=seed_commitment(config.seed, nonce).hex(),
        training=training_settings(config),
        checkpoint_every=checkpoint_every,
        dataset=StatementDataset(
            name=data.name,
            size=len(data),
            input_shape=list(data.input_shape),
            num_classes=data.num_classes,
            merkle_root=dataset_root(data),
        ),
        trained_parameters=list(trained_parameters) if trained_parameters is not None else None,
        triggers=None
        if triggers is None
        else StatementTriggers(merkle_root=triggers.root(), count=len(triggers.y), key_ids=list(triggers.key_ids)),
        loop=loop,
    )
    validate_statement(statement, "the new statement")
    return statement, SeedOpening(seed=config.seed, nonce=nonce.hex())


def validate_statement(statement: TrainingStatement, source: str | Path) -> TrainingStatement:
    """Checks a schema cannot express: the training object is exactly a valid TrainConfig without its seed."""
    statement.config(0, source)
    try:  # architecture arguments are checked here, before any model is sized or built (models.arguments)
        check_arguments(statement.model.architecture, statement.model.arguments)
    except ModeldeedError as exc:
        raise file_error(FormatError, source, f"field 'model': {exc}") from None
    names = statement.trained_parameters
    if names is not None and len(set(names)) != len(names):
        raise file_error(FormatError, source, "field 'trained_parameters' lists a parameter twice")
    return statement


def statement_path(path: str | Path) -> Path:
    """`pol commit`'s directory or the statement file itself."""
    path = Path(path)
    return path / STATEMENT_FILE if path.is_dir() else path


def opening_path(path: str | Path) -> Path:
    """`pol commit`'s directory (its opening.json), an opening file, or the opening beside a statement file."""
    path = Path(path)
    if path.is_dir():
        return path / OPENING_FILE
    return path.with_name(OPENING_FILE) if path.name == STATEMENT_FILE else path


def load_statement(path: str | Path) -> TrainingStatement:
    """Read a statement from `pol commit`'s directory or from the file itself."""
    file = statement_path(path)
    within = path if Path(path).is_dir() else None  # a directory named: nothing outside it is read
    statement = load_document(TrainingStatement, file, within=within, max_bytes=MAX_STATEMENT_BYTES)
    return validate_statement(statement, file)


def parse_statement(obj: Any, source: str | Path) -> TrainingStatement:
    return validate_statement(validate_document(TrainingStatement, obj, source), source)


def load_opening(path: str | Path) -> SeedOpening:
    file = opening_path(path)
    within = path if Path(path).is_dir() else None
    doc = load_document(SeedOpeningFile, file, within=within, max_bytes=1 << 16)
    return SeedOpening(seed=doc.seed, nonce=doc.nonce)


def save_statement(path: str | Path, statement: TrainingStatement, *, force: bool = False) -> Path:
    return _save(statement_path(path), statement.to_json(), force)


def save_opening(path: str | Path, opening: SeedOpening, *, force: bool = False) -> Path:
    doc = SeedOpeningFile(seed=opening.seed, nonce=opening.nonce).model_dump(mode="json")
    return _save(opening_path(path), doc, force)


def _save(path: Path, doc: dict[str, Any], force: bool) -> Path:
    if path.exists() and not force:
        raise ModeldeedError(
            f"{path}: already exists; a statement is made once, before training (overwriting it breaks the "
            "proofs made with it). Pass --force (force=True) to replace it anyway"
        )
    write_json_atomic(path, doc)
    return path
