"""Writing a proof directory step by step, so that an interrupted recording can be resumed.

While recording, `recording/header.json` holds what is known up front, and each checkpoint ends with
an atomically written commit record `recording/segment-NNNNNN.json`: the checkpoint's entry, the
steps since the previous checkpoint, and any new sample file. A checkpoint or sample file only counts
once its segment exists, so nothing half-written is ever referenced. `finish` assembles proof.json
(canonical JSON) from the header and the segments and removes `recording/`. Besides the recorder,
anything that builds proofs (tests that tamper, attacks that forge) uses this class.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import FormatError, ModeldeedError, file_error
from ..files import read_json_object, sha256_bytes, write_json_atomic, write_safetensors_atomic
from ..schema import Document, load_document
from .checkpoints import ZSTD_LEVEL, save_checkpoint
from .proof import (
    MAX_PROOF_BYTES,
    PROOF_FILE,
    CheckpointDoc,
    CheckpointEntry,
    Proof,
    ProofHeader,
    SampleFile,
    SampleFileDoc,
    StepColumns,
    StepRecord,
    checkpoint_file,
    parse_header,
    samples_file,
    steps_from_doc,
    steps_to_json,
    write_proof,
)
from .store import ProofStore

log = logging.getLogger(__name__)

RECORDING_DIR = "recording"
SEGMENT_FORMAT = "modeldeed.pol.segment"


class SegmentDoc(Document):
    """`recording/segment-NNNNNN.json`: commits one checkpoint with the steps and sample files before it."""

    format: Literal["modeldeed.pol.segment"]
    version: Literal[1]
    checkpoint: CheckpointDoc
    steps: StepColumns
    sample_files: list[SampleFileDoc]


def unstarted(directory: Path) -> bool:
    """A recording that stopped before its first checkpoint was committed (a full disk while writing W_0, an
    interruption): a header, perhaps a partial W_0, and no segment. Nothing in it can be resumed."""
    journal = directory / RECORDING_DIR
    return not (directory / PROOF_FILE).exists() and journal.is_dir() and not any(journal.glob("segment-*.json"))


def discard_unstarted(directory: Path) -> None:
    """Remove what an unstarted recording left (its journal and any checkpoint or sample file the writer names;
    nothing else), so the same directory can be recorded into again."""
    log.info("%s: discarding a recording that stopped before its first checkpoint", directory)
    shutil.rmtree(directory / RECORDING_DIR)
    for folder, pattern in (("checkpoints", "step-*.safetensors"), ("samples", "samples-*.safetensors")):
        for leftover in [*(directory / folder).glob(pattern), *(directory / folder).glob(".*.tmp")]:
            if leftover.is_file() and not leftover.is_symlink():
                leftover.unlink()


class ProofWriter:
    """Builds one proof: add steps and samples, then a checkpoint (which commits them); then finish."""

    def __init__(
        self, directory: str | Path, header: ProofHeader, *, level: int = ZSTD_LEVEL, _resumed: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.header = header
        self.level = level
        self.steps: list[StepRecord] = []
        self.checkpoints: list[CheckpointEntry] = []
        self.sample_files: list[SampleFile] = []
        self._committed_steps = 0
        self._pending_x: list[torch.Tensor] = []
        self._pending_y: list[int] = []
        self._sample_ids: dict[str, int] = {}
        self._previous: dict[str, torch.Tensor] | None = None
        if not _resumed:
            if unstarted(self.directory):
                discard_unstarted(self.directory)
            if (self.directory / PROOF_FILE).exists() or (self.directory / RECORDING_DIR).exists():
                raise ModeldeedError(
                    f"{self.directory}: already holds a proof or a recording; choose a new directory "
                    "(or resume the interrupted recording)"
                )
            write_json_atomic(self.directory / RECORDING_DIR / "header.json", header.to_json())

    @property
    def next_step(self) -> int:
        return len(self.steps)

    @property
    def stored_sample_count(self) -> int:
        return sum(f.count for f in self.sample_files) + len(self._pending_y)

    def add_committed_samples(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Store samples committed to in the training statement (a watermark's triggers) first, in their
        committed order, so that stored samples 0 .. M-1 are exactly them (before any step is added)."""
        if self.steps or self.stored_sample_count:
            raise ModeldeedError("committed samples must be stored before any step or other sample")
        x = x.detach().to("cpu", torch.float32).contiguous()
        y = y.detach().to("cpu", torch.int64)
        for xi, yi in zip(x, y):
            self._sample_ids.setdefault(sample_key(xi, yi), self.stored_sample_count)
            self._pending_x.append(xi.clone())
            self._pending_y.append(int(yi))

    def add_samples(self, x: torch.Tensor, y: torch.Tensor) -> list[int]:
        """Numbers of these samples in the proof's store; identical samples are stored once."""
        x = x.detach().to("cpu", torch.float32).contiguous()
        y = y.detach().to("cpu", torch.int64)
        numbers = []
        for xi, yi in zip(x, y):
            key = sample_key(xi, yi)
            if key not in self._sample_ids:
                self._sample_ids[key] = self.stored_sample_count
                self._pending_x.append(xi.clone())
                self._pending_y.append(int(yi))
            numbers.append(self._sample_ids[key])
        return numbers

    def add_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def add_checkpoint(self, step: int, tensors: Mapping[str, torch.Tensor]) -> CheckpointEntry:
        """Write the checkpoint after `step` steps, then commit it with the steps and samples before it."""
        if step != self.next_step:
            raise ModeldeedError(f"checkpoint at step {step}, but {self.next_step} steps have been recorded")
        if self.checkpoints and step <= self.checkpoints[-1].step:
            raise ModeldeedError(f"checkpoint steps must increase: {step} after {self.checkpoints[-1].step}")
        cpu = {name: t.detach().to("cpu").clone() for name, t in tensors.items()}
        keyframe = self._previous is None or len(self.checkpoints) % self.header.keyframe_every == 0
        base_step = None if keyframe else self.checkpoints[-1].step
        name = checkpoint_file(step)
        data = save_checkpoint(
            self.directory / name, step, cpu, None if keyframe else self._previous, base_step, self.level
        )
        entry = CheckpointEntry(name, sha256_bytes(data), len(data), step, base_step)
        new_samples = self._flush_samples()
        segment = {
            "format": SEGMENT_FORMAT,
            "version": 1,
            "checkpoint": entry.to_json(),
            "steps": steps_to_json(self.steps[self._committed_steps :]),
            "sample_files": [f.to_json() for f in new_samples],
        }
        write_json_atomic(self.directory / RECORDING_DIR / f"segment-{len(self.checkpoints):06d}.json", segment)
        self.checkpoints.append(entry)
        self.sample_files.extend(new_samples)
        self._committed_steps = len(self.steps)
        self._previous = cpu
        log.info("proof checkpoint at step %d: %d bytes", step, len(data))
        return entry

    def _flush_samples(self) -> list[SampleFile]:
        if not self._pending_y:
            return []
        name = samples_file(len(self.sample_files))
        x = torch.stack(self._pending_x)
        y = torch.tensor(self._pending_y, dtype=torch.int64)
        data = write_safetensors_atomic(self.directory / name, {"x": x, "y": y})
        self._pending_x, self._pending_y = [], []
        return [SampleFile(name, sha256_bytes(data), len(data), len(y))]

    def proof(self) -> Proof:
        if self._committed_steps != len(self.steps):
            raise ModeldeedError(
                f"{len(self.steps) - self._committed_steps} steps after the last checkpoint; "
                "add a final checkpoint first"
            )
        return Proof(self.header, tuple(self.steps), tuple(self.checkpoints), tuple(self.sample_files))

    def finish(self) -> str:
        """Write proof.json, remove the recording journal, return the proof id."""
        proof_id = write_proof(self.directory, self.proof())
        shutil.rmtree(self.directory / RECORDING_DIR, ignore_errors=True)
        log.info("proof %s written to %s", proof_id, self.directory)
        return proof_id

    def last_checkpoint(self) -> dict[str, torch.Tensor]:
        if self._previous is None:
            raise ModeldeedError(f"{self.directory}: the recording has no checkpoint yet")
        return self._previous

    @classmethod
    def resume(cls, directory: str | Path, *, level: int = ZSTD_LEVEL) -> ProofWriter:
        """Reopen an interrupted recording at its last committed checkpoint (files verified by hash)."""
        directory = Path(directory)
        journal = directory / RECORDING_DIR
        if (directory / PROOF_FILE).exists():
            raise ModeldeedError(f"{directory}: the proof is already complete; nothing to resume")
        if not journal.is_dir():
            raise ModeldeedError(f"{directory}: no interrupted recording to resume (no {RECORDING_DIR}/ folder)")
        header_path = journal / "header.json"
        header = parse_header(read_json_object(header_path, within=directory), header_path)
        writer = cls(directory, header, level=level, _resumed=True)
        number = 0
        while (path := journal / f"segment-{number:06d}.json").exists():
            writer._load_segment(path)
            number += 1
        if not writer.checkpoints:
            raise ModeldeedError(
                f"{directory}: the recording stopped before its first checkpoint, so nothing was recorded; run the "
                "same command without --resume to start it again in this directory"
            )
        store = ProofStore(directory, writer.proof(), trust_code=True)  # the recorder's own files and model code
        writer._previous = {k: v.clone() for k, v in store.checkpoint(len(writer.checkpoints) - 1).items()}
        samples = store.samples()
        if samples is not None:
            for i, (xi, yi) in enumerate(zip(samples.x, samples.y)):
                writer._sample_ids.setdefault(sample_key(xi, yi), i)
        log.info("resuming %s at step %d", directory, writer.next_step)
        return writer

    def _load_segment(self, path: Path) -> None:
        doc = load_document(SegmentDoc, path, within=self.directory, max_bytes=MAX_PROOF_BYTES)
        c = doc.checkpoint
        entry = CheckpointEntry(c.file, c.sha256, c.size, c.step, c.base_step)
        previous = self.checkpoints[-1].step if self.checkpoints else 0
        if (self.checkpoints and entry.step <= previous) or (not self.checkpoints and entry.step != 0):
            raise file_error(FormatError, path, f"checkpoint step {entry.step} does not follow {previous}")
        if len(doc.steps.indices) != entry.step - previous:
            raise file_error(FormatError, path, f"holds {len(doc.steps.indices)} steps, not {entry.step - previous}")
        steps = steps_from_doc(doc.steps, self.header.dataset.size, path)
        samples = [SampleFile(f.file, f.sha256, f.size, f.count) for f in doc.sample_files]
        self.steps.extend(steps)
        self.checkpoints.append(entry)
        self.sample_files.extend(samples)
        self._committed_steps = len(self.steps)


def sample_key(x: torch.Tensor, y: torch.Tensor | int) -> str:
    """Identity of a stored sample (exact image bytes and label), so each distinct one is stored once."""
    return hashlib.sha256(x.numpy().tobytes() + int(y).to_bytes(8, "little", signed=True)).hexdigest()


def step_record(indices: np.ndarray, stored: list[int], digest: str, lr: float, seed: int | None) -> StepRecord:
    return StepRecord(np.asarray(indices, dtype=np.int64).copy(), tuple(stored), digest, float(lr), seed)


def header_summary(header: ProofHeader) -> dict[str, Any]:
    """The parts of a header that must match when a recording is resumed."""
    doc = header.to_json()
    return {
        k: doc[k]
        for k in (
            "model",
            "training",
            "trained_parameters",
            "dataset",
            "initialisation",
            "checkpoint_every",
            "keyframe_every",
        )
    }
