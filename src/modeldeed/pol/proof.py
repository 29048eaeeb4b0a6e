"""The proof format: `proof.json` (validated field by field) and the files it references by SHA-256.

A proof is a directory. `proof.json` holds everything but the tensors: hyper-parameters, architecture,
dataset fingerprint, the declared initialisation, the environment, and per step the batch's dataset
indices, stored extra samples, SHA-256, learning rate and augmentation seed; then the checkpoints and
sample files with their sizes and SHA-256. It is written as canonical JSON, so `sha256sum proof.json`
prints the proof id. The loader treats the file as hostile: every field is type- and range-checked,
every path must have the exact form the writer uses (no `..`, no absolute paths), every count is bounded.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import FormatError, ModeldeedError, file_error
from ..files import canonical_json, read_json_object, sha256_bytes, write_bytes_atomic
from ..models import ModelSpec
from ..training import TrainConfig
from ..validation import Fields
from .commitment import CarriedStatement

PROOF_FORMAT = "modeldeed.pol.proof"
PROOF_FILE = "proof.json"
CHECKPOINT_PATTERN = r"checkpoints/step-[0-9]{8,12}\.safetensors"
SAMPLES_PATTERN = r"samples/samples-[0-9]{6}\.safetensors"
INITIALISATION_SCHEMES = ("pytorch-default", "kaiming-normal", "unspecified")

MAX_PROOF_BYTES = 1 << 30
MAX_STEPS = 50_000_000
MAX_BATCH = 1 << 16
MAX_CHECKPOINTS = 1_000_000
MAX_DELTA_CHAIN = 64
MAX_SAMPLES = 50_000_000


def checkpoint_file(step: int) -> str:
    return f"checkpoints/step-{step:08d}.safetensors"


def samples_file(number: int) -> str:
    return f"samples/samples-{number:06d}.safetensors"


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
    environment: dict[str, Any]  # torch version, device, threads, ... (informational)
    checkpoint_every: int
    keyframe_every: int
    modeldeed_version: str = __version__
    statement: CarriedStatement | None = None  # the owner's training statement and seed opening, if recorded

    def to_json(self) -> dict[str, Any]:
        doc = {
            "format": PROOF_FORMAT,
            "version": 1,
            "modeldeed_version": self.modeldeed_version,
            "model": self.spec.to_json(),
            "training": self.config.to_json(),
            "trained_parameters": list(self.trained_parameters),
            "dataset": self.dataset.to_json(),
            "initialisation": dict(self.initialisation),
            "environment": dict(self.environment),
            "checkpoint_every": self.checkpoint_every,
            "keyframe_every": self.keyframe_every,
        }
        if self.statement is not None:  # absent otherwise, so proofs without one keep their ids
            doc["statement"] = self.statement.to_json()
        return doc


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


STEP_COLUMNS = ("indices", "stored_samples", "batch_sha256", "lr", "augment_seed")


def steps_to_json(steps: list[StepRecord]) -> dict[str, list[Any]]:
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
        doc["steps"] = steps_to_json(list(self.steps))
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
    path = Path(directory) / PROOF_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise file_error(
            FormatError,
            path,
            "file not found (is this a proof directory? an unfinished "
            "recording has no proof.json until it is resumed and completes)",
        ) from None
    if size > MAX_PROOF_BYTES:
        raise file_error(FormatError, path, f"is {size} bytes, more than the {MAX_PROOF_BYTES} a proof may have")
    doc = read_json_object(path, within=directory, max_bytes=MAX_PROOF_BYTES)
    return parse_proof(doc, path), proof_id(doc)


def parse_proof(doc: dict[str, Any], source: str | Path) -> Proof:
    fields = Fields(doc, source)
    header = parse_header(fields)
    total = fields.int("total_steps", minimum=0, maximum=MAX_STEPS)
    steps = parse_steps(fields.object("steps"), total, header.dataset.size)
    checkpoints = tuple(parse_checkpoint(f) for f in fields.objects("checkpoints"))
    if len(checkpoints) > MAX_CHECKPOINTS:
        raise fields.fail("checkpoints", f"has {len(checkpoints)} entries, more than {MAX_CHECKPOINTS}")
    sample_files = tuple(parse_sample_file(f) for f in fields.objects("sample_files"))
    if sum(f.count for f in sample_files) > MAX_SAMPLES:
        raise fields.fail("sample_files", f"store more than {MAX_SAMPLES} samples")
    names = [c.file for c in checkpoints] + [f.file for f in sample_files]
    if len(set(names)) != len(names):
        raise fields.fail("checkpoints", "list the same file twice")
    stored = sum(f.count for f in sample_files)
    for step, record in enumerate(steps):
        if record.stored and max(record.stored) >= stored:
            raise fields.fail(
                "steps.stored_samples",
                f"step {step} refers to stored sample {max(record.stored)}, but the sample files hold {stored}",
            )
    return Proof(header, steps, checkpoints, sample_files)


def parse_header(fields: Fields) -> ProofHeader:
    fields.expect_format(PROOF_FORMAT)
    model = fields.object("model")
    spec = ModelSpec(model.str("architecture"), model.object("arguments").obj)
    config = parse_train_config(fields.object("training"))
    trained = tuple(fields.str_list("trained_parameters"))
    if not trained or len(set(trained)) != len(trained):
        raise fields.fail("trained_parameters", "must list each trained parameter once, and at least one")
    data = fields.object("dataset")
    shape = data.int_list("input_shape", length=3, minimum=1)
    dataset = DatasetInfo(
        data.str("name"),
        data.hex64("fingerprint"),
        data.int("size", minimum=1),
        (shape[0], shape[1], shape[2]),
        data.int("num_classes", minimum=1),
    )
    init = fields.object("initialisation")
    scheme = init.str("scheme", choices=INITIALISATION_SCHEMES)
    seed = None if init.raw("seed") is None else init.int("seed")
    environment = fields.object("environment").obj
    for key, value in environment.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise fields.object("environment").fail(key, "must be a string, number, boolean or null")
    return ProofHeader(
        spec=spec,
        config=config,
        trained_parameters=trained,
        dataset=dataset,
        initialisation={"scheme": scheme, "seed": seed},
        environment=dict(environment),
        checkpoint_every=fields.int("checkpoint_every", minimum=1, maximum=MAX_STEPS),
        keyframe_every=fields.int("keyframe_every", minimum=1, maximum=MAX_DELTA_CHAIN),
        modeldeed_version=fields.str("modeldeed_version"),
        statement=CarriedStatement.from_fields(fields.object("statement")) if fields.has("statement") else None,
    )


def parse_train_config(fields: Fields) -> TrainConfig:
    """TrainConfig from JSON with every field's type checked first (its own checks assume the types)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if not fields.has(f.name):
            raise fields.fail(f.name, "is missing")
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            values[f.name] = fields.bool(f.name)
        elif isinstance(default, int):
            values[f.name] = fields.int(f.name, minimum=-(2**63), maximum=2**63 - 1)
        elif isinstance(default, float):
            values[f.name] = fields.float(f.name)
        elif isinstance(default, str):
            values[f.name] = fields.str(f.name)
        else:  # lr_milestones
            values[f.name] = tuple(fields.int_list(f.name, minimum=0))
    unknown = sorted(set(fields.obj) - set(values))
    if unknown:
        raise fields.fail(unknown[0], "is not a training setting this version knows")
    try:
        return TrainConfig(**values)
    except ModeldeedError as exc:
        raise FormatError(f"{fields.source}: field '{fields.prefix}' is invalid: {exc}") from None


def parse_steps(fields: Fields, total: int, dataset_size: int) -> tuple[StepRecord, ...]:
    columns = {name: fields.list(name, length=total) for name in STEP_COLUMNS}
    unknown = sorted(set(fields.obj) - set(STEP_COLUMNS))
    if unknown:
        raise fields.fail(unknown[0], "is not a per-step column this version knows")
    records = []
    for step in range(total):
        indices = int_row(fields, "indices", step, columns["indices"][step], dataset_size)
        stored = int_row(fields, "stored_samples", step, columns["stored_samples"][step], MAX_SAMPLES)
        if len(indices) + len(stored) == 0:
            raise fields.fail("indices", f"step {step} has an empty batch (no indices, no stored samples)")
        if len(indices) + len(stored) > MAX_BATCH:
            raise fields.fail(
                "indices", f"step {step} has a batch of {len(indices) + len(stored)} samples, more than {MAX_BATCH}"
            )
        digest = columns["batch_sha256"][step]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise fields.fail("batch_sha256", f"entry {step} must be 64 lowercase hex digits")
        lr = columns["lr"][step]
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0 or lr == float("inf"):
            raise fields.fail("lr", f"entry {step} must be a positive number, found {lr!r}")
        seed = columns["augment_seed"][step]
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64):
            raise fields.fail("augment_seed", f"entry {step} must be null or an integer in [0, 2^64)")
        records.append(StepRecord(np.asarray(indices, dtype=np.int64), tuple(stored), digest, float(lr), seed))
    return tuple(records)


def int_row(fields: Fields, column: str, step: int, row: Any, bound: int) -> list[int]:
    if not isinstance(row, list):
        raise fields.fail(column, f"entry {step} must be a list of integers")
    if len(row) > MAX_BATCH:
        raise fields.fail(column, f"entry {step} has {len(row)} entries, more than {MAX_BATCH}")
    for value in row:
        if type(value) is not int or not 0 <= value < bound:
            raise fields.fail(column, f"entry {step} must hold integers in [0, {bound}), found {value!r}")
    return row


def parse_file_entry(fields: Fields, pattern: str) -> tuple[str, str, int]:
    return (fields.str("file", pattern=pattern), fields.hex64("sha256"), fields.int("size", minimum=0, maximum=1 << 40))


def parse_checkpoint(fields: Fields) -> CheckpointEntry:
    file, digest, size = parse_file_entry(fields, CHECKPOINT_PATTERN)
    base = None if fields.raw("base_step") is None else fields.int("base_step", minimum=0)
    return CheckpointEntry(file, digest, size, fields.int("step", minimum=0, maximum=MAX_STEPS), base)


def parse_sample_file(fields: Fields) -> SampleFile:
    file, digest, size = parse_file_entry(fields, SAMPLES_PATTERN)
    return SampleFile(file, digest, size, fields.int("count", minimum=1, maximum=MAX_SAMPLES))
