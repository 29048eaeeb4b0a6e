"""The proof format: `proof.json` (a declared pydantic model) and the files it references by SHA-256.

A proof is a directory. `proof.json` holds everything but the tensors: hyper-parameters, architecture,
dataset fingerprint, the declared initialisation, the environment record, and per step the batch's dataset
indices, stored extra samples, SHA-256, learning rate and augmentation seed; then the checkpoints and
sample files with their sizes and SHA-256. It is written as canonical JSON, so `sha256sum proof.json`
prints the proof id. The loader treats the file as hostile: it is read through the bounded reader, every
field is typed and range-checked, every path must have the exact form the writer uses (no `..`, no absolute
paths), every count is bounded. Format: docs/formats.md ("Proof of learning", version 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from .. import __version__
from ..errors import FormatError, ModeldeedError, file_error
from ..files import DEFAULT_JSON_MEMORY, canonical_json, read_json_object, sha256_bytes, write_bytes_atomic
from ..models import ModelSpec
from ..models.arguments import check_arguments
from ..schema import U64, Document, Hex64, Name, Positive, validate_document
from ..training import TrainConfig
from .environment import Environment
from .loop import LoopDoc
from .settings import config_from_json
from .statement import CarriedStatement

PROOF_FORMAT = "modeldeed.pol.proof"
PROOF_VERSION = 2
PROOF_FILE = "proof.json"
CHECKPOINT_PATTERN = r"^checkpoints/step-[0-9]{8,12}\.safetensors$"
SAMPLES_PATTERN = r"^samples/samples-[0-9]{6}\.safetensors$"

MAX_PROOF_BYTES = DEFAULT_JSON_MEMORY // 2  # decoding takes at least 2x the bytes (files.json_memory_estimate)
MAX_STEPS = 50_000_000
MAX_BATCH = 1 << 16
MAX_CHECKPOINTS = 1_000_000
MAX_DELTA_CHAIN = 64
MAX_SAMPLES = 50_000_000
MAX_FILE_BYTES = 1 << 40

Step = Annotated[int, Field(ge=0, le=MAX_STEPS)]
Row = Annotated[list[Annotated[int, Field(ge=0, lt=MAX_SAMPLES)]], Field(max_length=MAX_BATCH)]
PositiveFloat = Annotated[float, Field(gt=0)]


def checkpoint_file(step: int) -> str:
    return f"checkpoints/step-{step:08d}.safetensors"


def samples_file(number: int) -> str:
    return f"samples/samples-{number:06d}.safetensors"


def checkpoint_steps(total: int, k: int) -> list[int]:
    """Where a proof of T steps with interval k has its checkpoints: 0, k, 2k, ... and T."""
    steps = list(range(0, total, k))
    return steps + [total] if not steps or steps[-1] != total else steps


# ------------------------------------------------------------------------------------------ declared JSON


class ModelDoc(Document):
    architecture: Name
    arguments: dict[str, Any]


class DatasetDoc(Document):
    name: Annotated[str, Field(max_length=512)]
    fingerprint: Hex64
    size: Positive
    input_shape: Annotated[list[Annotated[int, Field(ge=1, le=1 << 20)]], Field(min_length=3, max_length=3)]
    num_classes: Positive


class InitialisationDoc(Document):
    scheme: Literal["pytorch-default", "kaiming-normal", "unspecified"]
    seed: U64 | None


class CheckpointDoc(Document):
    step: Step
    file: Annotated[str, Field(pattern=CHECKPOINT_PATTERN)]
    sha256: Hex64
    size: Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)]
    base_step: Step | None


class SampleFileDoc(Document):
    file: Annotated[str, Field(pattern=SAMPLES_PATTERN)]
    sha256: Hex64
    size: Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)]
    count: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]


class StepColumns(Document):
    """Per-step columns, entry t for global step t (0-based); all of equal length."""

    indices: list[Row]
    stored_samples: list[Row]
    batch_sha256: list[Hex64]
    lr: list[PositiveFloat]
    augment_seed: list[U64 | None]

    @model_validator(mode="after")
    def _equal_lengths(self) -> StepColumns:
        lengths = {len(self.indices), len(self.stored_samples), len(self.batch_sha256), len(self.lr)}
        if len(lengths | {len(self.augment_seed)}) != 1:
            raise ValueError("the per-step columns must all have one entry per step")
        return self


class HeaderDoc(Document):
    """What is recorded once, before the first step (also `recording/header.json` while recording, and an opened
    proof's `header`). Its format is proof.json's: only `ProofDoc` declares it, so that one class owns it."""

    format: Annotated[str, Field(pattern=r"^modeldeed\.pol\.proof$")]
    version: Literal[2]
    modeldeed_version: Annotated[str, Field(max_length=64)]
    model: ModelDoc
    training: dict[str, Any]
    trained_parameters: Annotated[list[Annotated[str, Field(min_length=1, max_length=512)]], Field(min_length=1)]
    dataset: DatasetDoc
    initialisation: InitialisationDoc
    environment: Environment
    checkpoint_every: Annotated[int, Field(ge=1, le=MAX_STEPS)]
    keyframe_every: Annotated[int, Field(ge=1, le=MAX_DELTA_CHAIN)]
    statement: CarriedStatement | None = None
    loop: LoopDoc | None = None  # a user's own training step (`pol.own`); absent: modeldeed's SGD step


class ProofDoc(HeaderDoc):
    """proof.json (`modeldeed.pol.proof`, version 2)."""

    format: Literal["modeldeed.pol.proof"]
    total_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    steps: StepColumns
    checkpoints: Annotated[list[CheckpointDoc], Field(max_length=MAX_CHECKPOINTS)]
    sample_files: Annotated[list[SampleFileDoc], Field(max_length=MAX_CHECKPOINTS)]


# ------------------------------------------------------------------------------------------ parsed proof


@dataclass(frozen=True)
class DatasetInfo:
    """Which training set the proof claims: its fingerprint is the SHA-256 of all its exact bytes."""

    name: str
    fingerprint: str
    size: int
    input_shape: tuple[int, int, int]
    num_classes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "size": self.size,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }


@dataclass(frozen=True)
class ProofHeader:
    """Everything recorded once, before the first step."""

    spec: ModelSpec
    config: TrainConfig
    trained_parameters: tuple[str, ...]  # the optimizer's parameters, in its order
    dataset: DatasetInfo
    initialisation: dict[str, Any]  # {"scheme": ..., "seed": int | None}
    environment: Environment
    checkpoint_every: int
    keyframe_every: int
    modeldeed_version: str = __version__
    statement: CarriedStatement | None = None  # the owner's training statement and seed opening, if recorded
    loop: LoopDoc | None = None  # a user's own step, optimizer and schedule (`pol.own`); None: `training.sgd_step`

    def to_json(self) -> dict[str, Any]:
        doc = {
            "format": PROOF_FORMAT,
            "version": PROOF_VERSION,
            "modeldeed_version": self.modeldeed_version,
            "model": self.spec.to_json(),
            "training": self.config.to_json(),
            "trained_parameters": list(self.trained_parameters),
            "dataset": self.dataset.to_json(),
            "initialisation": dict(self.initialisation),
            "environment": self.environment.model_dump(mode="json"),
            "checkpoint_every": self.checkpoint_every,
            "keyframe_every": self.keyframe_every,
        }
        if self.statement is not None:  # absent otherwise
            doc["statement"] = self.statement.to_json()
        if self.loop is not None:  # absent otherwise, so that proofs of modeldeed's own loop keep their ids
            doc["loop"] = self.loop.to_json()
        return doc

    def learning_rates(self) -> list[float]:
        """The learning rate of every step 0..T (entry T: the rate after the last step), from the settings alone."""
        config = self.config
        per_epoch = config.steps_per_epoch(self.dataset.size)
        total = per_epoch * config.epochs
        if self.loop is not None:
            from .loop import lr_sequence

            return lr_sequence(self.loop, per_epoch, total)
        return [config.lr_at(step // per_epoch) for step in range(total + 1)]

    def lr_at_step(self, step: int) -> float:
        """The learning rate step `step` trains with (the schedule position of a checkpoint at `step`)."""
        if self.loop is not None:
            return self.learning_rates()[step]
        return self.config.lr_at(step // self.config.steps_per_epoch(self.dataset.size))

    def digest(self) -> str:
        """SHA-256 of the header's canonical JSON: what a proof commitment binds besides its Merkle root."""
        return sha256_bytes(canonical_json(self.to_json()))


@dataclass(frozen=True)
class FileEntry:
    file: str  # relative to the proof directory
    sha256: str
    size: int


@dataclass(frozen=True)
class CheckpointEntry(FileEntry):
    step: int = 0
    base_step: int | None = None  # None: a keyframe; else the delta base (the previous checkpoint)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "base_step": self.base_step,
        }


@dataclass(frozen=True)
class SampleFile(FileEntry):
    count: int = 0  # samples in this file; stored-sample numbers run on across files

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "size": self.size, "count": self.count}


@dataclass(frozen=True)
class StepRecord:
    """One training step: the batch was data[indices] (augmented) followed by the stored samples."""

    indices: np.ndarray  # int64 dataset indices
    stored: tuple[int, ...]  # numbers of stored samples appended after them
    batch_sha256: str
    lr: float
    augment_seed: int | None


def steps_to_json(steps: Sequence[StepRecord]) -> dict[str, list[Any]]:
    return {
        "indices": [s.indices.tolist() for s in steps],
        "stored_samples": [list(s.stored) for s in steps],
        "batch_sha256": [s.batch_sha256 for s in steps],
        "lr": [s.lr for s in steps],
        "augment_seed": [s.augment_seed for s in steps],
    }


@dataclass(frozen=True)
class Proof:
    header: ProofHeader
    steps: tuple[StepRecord, ...]
    checkpoints: tuple[CheckpointEntry, ...]
    sample_files: tuple[SampleFile, ...]

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    @property
    def stored_sample_count(self) -> int:
        return sum(f.count for f in self.sample_files)

    def to_json(self) -> dict[str, Any]:
        doc = self.header.to_json()
        doc["total_steps"] = self.total_steps
        doc["steps"] = steps_to_json(self.steps)
        doc["checkpoints"] = [c.to_json() for c in self.checkpoints]
        doc["sample_files"] = [f.to_json() for f in self.sample_files]
        return doc


def proof_id(doc: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of proof.json: changing any field (or any file's hash) changes it."""
    return sha256_bytes(canonical_json(doc))


def write_proof(directory: str | Path, proof: Proof) -> str:
    """Write proof.json as canonical JSON (so its file hash is the proof id); return the id."""
    data = canonical_json(proof.to_json())
    write_bytes_atomic(Path(directory) / PROOF_FILE, data)
    return sha256_bytes(data)


def load_proof(directory: str | Path) -> tuple[Proof, str]:
    """Parse and validate proof.json; return the proof and its id. Files are checked by the verifier."""
    directory = Path(directory)
    path = directory / PROOF_FILE
    if not path.exists() and (directory / "recording").is_dir():
        raise file_error(
            FormatError,
            path,
            "file not found: this is an unfinished recording (it has no proof.json until it is resumed with "
            "--resume and completes)",
        )
    doc = read_json_object(path, within=directory, max_bytes=MAX_PROOF_BYTES)
    return parse_proof(doc, path), proof_id(doc)


def parse_proof(doc: dict[str, Any], source: str | Path) -> Proof:
    parsed = validate_document(ProofDoc, doc, source)
    header = header_from_doc(parsed, source)
    if len(parsed.steps.indices) != parsed.total_steps:
        raise file_error(
            FormatError,
            source,
            f"field 'steps' holds {len(parsed.steps.indices)} steps, total_steps says {parsed.total_steps}",
        )
    steps = steps_from_doc(parsed.steps, header.dataset.size, source)
    checkpoints = tuple(CheckpointEntry(c.file, c.sha256, c.size, c.step, c.base_step) for c in parsed.checkpoints)
    sample_files = tuple(SampleFile(f.file, f.sha256, f.size, f.count) for f in parsed.sample_files)
    if sum(f.count for f in sample_files) > MAX_SAMPLES:
        raise file_error(FormatError, source, f"field 'sample_files' stores more than {MAX_SAMPLES} samples")
    names = [c.file for c in checkpoints] + [f.file for f in sample_files]
    if len(set(names)) != len(names):
        raise file_error(FormatError, source, "field 'checkpoints' lists the same file twice")
    stored = sum(f.count for f in sample_files)
    for step, record in enumerate(steps):
        if record.stored and max(record.stored) >= stored:
            raise file_error(
                FormatError,
                source,
                f"field 'steps.stored_samples' entry {step} refers to stored sample {max(record.stored)}, but the "
                f"sample files hold {stored}",
            )
    return Proof(header, steps, checkpoints, sample_files)


def header_from_doc(doc: HeaderDoc, source: str | Path) -> ProofHeader:
    config = config_from_json(doc.training, source, "training")
    if doc.loop is not None and config.augment:
        raise file_error(FormatError, source, "field 'training.augment' must be false for a user's own loop")
    trained = tuple(doc.trained_parameters)
    if len(set(trained)) != len(trained):
        raise file_error(FormatError, source, "field 'trained_parameters' lists a parameter twice")
    shape = doc.dataset.input_shape
    try:  # the one place that validates architecture arguments (ranges, types), before anything is sized or built
        check_arguments(doc.model.architecture, doc.model.arguments)
    except ModeldeedError as exc:
        raise file_error(FormatError, source, f"field 'model': {exc}") from None
    return ProofHeader(
        spec=ModelSpec(doc.model.architecture, dict(doc.model.arguments)),
        config=config,
        trained_parameters=trained,
        dataset=DatasetInfo(
            doc.dataset.name,
            doc.dataset.fingerprint,
            doc.dataset.size,
            (shape[0], shape[1], shape[2]),
            doc.dataset.num_classes,
        ),
        initialisation={"scheme": doc.initialisation.scheme, "seed": doc.initialisation.seed},
        environment=doc.environment,
        checkpoint_every=doc.checkpoint_every,
        keyframe_every=doc.keyframe_every,
        modeldeed_version=doc.modeldeed_version,
        statement=doc.statement,
        loop=doc.loop,
    )


def parse_header(doc: dict[str, Any], source: str | Path) -> ProofHeader:
    return header_from_doc(validate_document(HeaderDoc, doc, source), source)


def steps_from_doc(columns: StepColumns, dataset_size: int, source: str | Path) -> tuple[StepRecord, ...]:
    records = []
    for step in range(len(columns.indices)):
        indices, stored = columns.indices[step], columns.stored_samples[step]
        if indices and max(indices) >= dataset_size:
            raise file_error(
                FormatError,
                source,
                f"field 'steps.indices' entry {step} holds index {max(indices)}, outside the "
                f"dataset's {dataset_size} samples",
            )
        if len(indices) + len(stored) == 0:
            raise file_error(FormatError, source, f"field 'steps.indices' entry {step} is an empty batch")
        if len(indices) + len(stored) > MAX_BATCH:
            raise file_error(
                FormatError, source, f"field 'steps.indices' entry {step} has more than {MAX_BATCH} samples"
            )
        records.append(
            StepRecord(
                np.asarray(indices, dtype=np.int64),
                tuple(stored),
                columns.batch_sha256[step],
                float(columns.lr[step]),
                columns.augment_seed[step],
            )
        )
    return tuple(records)


def parse_steps(doc: Any, count: int, dataset_size: int, source: str | Path) -> tuple[StepRecord, ...]:
    """Step columns of `count` steps (a recording segment, an opened interval)."""
    columns = validate_document(StepColumns, doc, source)
    if len(columns.indices) != count:
        raise file_error(FormatError, source, f"holds {len(columns.indices)} steps where {count} were expected")
    return steps_from_doc(columns, dataset_size, source)


def parse_checkpoint_entry(doc: Any, source: str | Path) -> CheckpointEntry:
    c = validate_document(CheckpointDoc, doc, source)
    return CheckpointEntry(c.file, c.sha256, c.size, c.step, c.base_step)


def parse_sample_file(doc: Any, source: str | Path) -> SampleFile:
    f = validate_document(SampleFileDoc, doc, source)
    return SampleFile(f.file, f.sha256, f.size, f.count)
