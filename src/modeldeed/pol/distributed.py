"""Replaying challenged intervals on an engine (`modeldeed.engine`): one interval per task, described by plain data.

The driver (the verifier the user runs) has checked the proof's integrity and chosen the intervals. Each task
names the proof directory, the SHA-256 of its proof.json (or opened.json) as the driver read it, the proof id,
the dataset by name, the comparison settings, the thread count and one interval. A worker trusts nothing else:
it re-reads the proof with the same bounded readers, refuses a proof file that is not the one the driver
checked, loads the checkpoints through the hash-checked store (every file against the listing of that very
proof file), rebuilds the batches (each checked against its recorded hash) and replays the interval through the
same `checks.replay_interval` the serial verifier runs. It returns the interval's result as plain values.

At the same thread count and on the same kind of machine the numbers are bit for bit those of the serial run:
the replay loads the whole stored state (weights, optimizer state, RNG) and depends on nothing else.

Example:
    with open_engine("ray", "local") as engine:
        verdict = verify_proof(path, data, policy, engine=engine, data_ref=DatasetRef("digits"))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FormatError, ModeldeedError, file_error
from ..files import sha256_regular_file
from .context import IntervalResult, VerificationContext
from .intervals import IntervalInfo
from .proof import MAX_PROOF_BYTES, PROOF_FILE
from .source import FullSource

__all__ = ["DatasetRef", "ReplayTask", "proof_file_digest", "replay_on_engine", "replay_task"]


PATH_DATASETS = ("folder:", "npz:", "memmap:")  # dataset names that carry a path


@dataclass(frozen=True)
class DatasetRef:
    """The verifier's dataset by name (`data.load_dataset`): what a worker loads its own copy from."""

    name: str
    data_dir: str | None = None

    @classmethod
    def of(cls, name: str, data_dir: str | None = None) -> DatasetRef:
        """The name and folder with every path made absolute (a worker's working directory is not the driver's)."""
        for prefix in PATH_DATASETS:
            if name.startswith(prefix):
                name = prefix + str(Path(name.removeprefix(prefix)).resolve())
        return cls(name, None if data_dir is None else str(Path(data_dir).resolve()))


@dataclass(frozen=True)
class ReplayTask:
    """One interval to replay, in plain data only (nothing here came out of the proof undecided)."""

    directory: str
    opened: bool
    proof_file_sha256: str
    proof_id: str
    dataset: DatasetRef
    settings: Mapping[str, Any]  # metrics, delta, d_ref, replay_mode and the relative bounds of the policy
    exact: bool
    device: str
    trust_code: bool
    threads: int
    index: int
    why: tuple[str, ...]
    known_update: Mapping[str, float] | None  # the interval's update the integrity pass measured, if any
    end_digests: tuple[str, str] | None = None  # the end checkpoint's (D_model, D_other) the integrity pass took


def proof_file_of(directory: Path, opened: bool) -> Path:
    from .opened import OPENED_FILE

    return directory / (OPENED_FILE if opened else PROOF_FILE)


def proof_file_digest(directory: Path, opened: bool) -> str:
    digest, _ = sha256_regular_file(proof_file_of(directory, opened), max_bytes=MAX_PROOF_BYTES, within=directory)
    return digest


def replay_settings(ctx: VerificationContext) -> dict[str, Any]:
    p = ctx.policy
    return {
        "metrics": tuple(p.metrics),
        "delta": dict(p.delta),
        "d_ref": None if p.d_ref is None else dict(p.d_ref),
        "replay_mode": p.replay_mode,
        "max_relative_error": p.max_relative_error,
        "max_buffer_error": p.max_buffer_error,
    }


def replay_on_engine(ctx: VerificationContext, chosen: Mapping[int, tuple[str, ...]]) -> list[IntervalResult | str]:
    """Replay the chosen intervals on `ctx.engine`, one task each; the outcomes in the order of `chosen`.

    A FormatError a worker met is raised here, after the outcomes before it are recorded, as the serial loop does.
    """
    if ctx.data_ref is None:
        raise ModeldeedError("replaying on a distributed engine needs the dataset by name (data_ref)")
    known = {i.index: dict(i.update) for i in ctx.intervals}
    full = isinstance(ctx.source, FullSource)
    digest = proof_file_digest(ctx.directory, ctx.source.opened)
    tasks = [
        ReplayTask(
            directory=str(ctx.directory.resolve()),
            opened=ctx.source.opened,
            proof_file_sha256=digest,
            proof_id=ctx.proof_id,
            dataset=ctx.data_ref,
            settings=replay_settings(ctx),
            exact=ctx.exact,
            device=ctx.device,
            trust_code=ctx.trust_code,
            threads=torch.get_num_threads(),
            index=index,
            why=why,
            known_update=known.get(index),
            end_digests=digests_hex(ctx.source, index + 1) if full else None,
        )
        for index, why in chosen.items()
    ]
    gpus = 1.0 if ctx.device.startswith("cuda") else 0.0
    outcomes: list[IntervalResult | str] = []
    for answer in ctx.engine.map(replay_task, tasks, gpus=gpus):
        if "format_error" in answer:
            ctx.interval_results.extend(o for o in outcomes if isinstance(o, IntervalResult))
            raise FormatError(answer["format_error"])
        outcomes.append(answer["problem"] if "problem" in answer else interval_from_plain(answer["interval"]))
    return outcomes


def digests_hex(source: FullSource, index: int) -> tuple[str, str] | None:
    """The digests the integrity pass took of checkpoint `index` (None if it took none)."""
    if index >= len(source.digests):
        return None
    model, other = source.digests[index]
    return model.hex(), other.hex()


class WorkerSource(FullSource):
    """A full proof on a worker, which knows the end checkpoint's digests from the driver's integrity pass.

    They are the digests of the hash-checked file that this very proof.json lists (the worker has checked that
    its proof.json is the driver's), so an exact replay is compared with them without decoding the end again.
    """

    def __init__(self, directory: Path, proof, known: dict[int, tuple[bytes, bytes]]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(directory, proof)
        self.known = known

    def digests_of(self, index: int) -> tuple[bytes, bytes]:
        if index in self.known:
            return self.known[index]
        return super().digests_of(index)


def interval_from_plain(doc: Mapping[str, Any]) -> IntervalResult:
    return IntervalResult(**{**doc, "problems": tuple(doc["problems"]), "selected_by": tuple(doc["selected_by"])})


@functools.lru_cache(maxsize=2)
def worker_dataset(ref: DatasetRef):  # type: ignore[no-untyped-def]
    """The verifier's dataset, loaded once per worker process (it is the verifier's own, not the prover's)."""
    from ..data import load_dataset

    return load_dataset(ref.name, ref.data_dir).train


# The proof a worker replayed last, read and hash-checked, with its model: the next task of the same proof file
# (same SHA-256, checked again per task) reuses its decoded checkpoints, as the serial verifier reuses its store.
_LAST_PROOF: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def replay_task(task: ReplayTask) -> dict[str, Any]:
    """Run on a worker: re-read the proof, replay one interval, return its result as plain values.

    Returns {"interval": fields of IntervalResult} or {"problem": why it could not be replayed} or
    {"format_error": message} for a file that fails its checks (the serial verifier fails the replay check on it).
    """
    from .checks import prepare_model, replay_interval
    from .opened import load_opened
    from .policy import VerificationPolicy
    from .proof import load_proof

    torch.set_num_threads(task.threads)
    directory = Path(task.directory)
    try:
        if proof_file_digest(directory, task.opened) != task.proof_file_sha256:
            raise file_error(
                FormatError,
                proof_file_of(directory, task.opened),
                "differs on this worker from the file the verifier checked (a proof directory that is not shared "
                "or was changed during verification)",
            )
        key = (task.directory, task.opened, task.proof_file_sha256, task.proof_id, task.trust_code, task.device)
        cached = _LAST_PROOF.get(key)
        if cached is None:
            _LAST_PROOF.clear()
            if task.opened:
                source, proof_id = load_opened(directory)
            else:
                proof, proof_id = load_proof(directory)
                source = WorkerSource(directory, proof, {})
            if proof_id != task.proof_id:
                raise file_error(FormatError, proof_file_of(directory, task.opened), "has another proof id here")
        else:
            source, model = cached
        if isinstance(source, WorkerSource):
            ends = task.end_digests
            source.known = {} if ends is None else {task.index + 1: (bytes.fromhex(ends[0]), bytes.fromhex(ends[1]))}
        policy = VerificationPolicy(**task.settings)
        device = "cuda" if task.device.startswith("cuda") else task.device  # Ray hands the task its own GPU
        data = worker_dataset(task.dataset)
        ctx = VerificationContext(directory, source, task.proof_id, data, policy, device, task.trust_code)
        ctx.exact = task.exact
        if cached is None:
            prepare_model(ctx)
            assert ctx.model is not None
            _LAST_PROOF[key] = (source, ctx.model)
        else:
            ctx.model = model
        if task.known_update is not None:
            steps = source.checkpoint_steps
            per_epoch = source.header.config.steps_per_epoch(source.header.dataset.size)
            first, end = steps[task.index], steps[task.index + 1]
            ctx.intervals = [IntervalInfo(task.index, first, end, first // per_epoch, dict(task.known_update))]
        outcome = replay_interval(ctx, task.index, task.why)
    except FormatError as exc:
        return {"format_error": str(exc)}
    if isinstance(outcome, str):
        return {"problem": outcome}
    return {"interval": plain(dataclasses.asdict(outcome))}


def plain(doc: dict[str, Any]) -> dict[str, Any]:
    """Floats, booleans, strings, and dicts/lists of them: nothing else crosses back."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, Mapping):
            out[key] = {str(k): float(v) for k, v in value.items()}
        elif isinstance(value, (tuple, list)):
            out[key] = [str(v) for v in value]
        elif isinstance(value, bool) or value is None:
            out[key] = value
        elif isinstance(value, int):
            out[key] = int(value)
        elif isinstance(value, float):
            out[key] = float(value)
        else:
            out[key] = str(value)
    return out
