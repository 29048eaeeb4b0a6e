"""Choosing the tolerance: measure honest replays elsewhere (eps_repr) and an independent run (d_ref).

The PoL paper's rule is eps_repr < delta < d_ref. eps_repr is the largest distance between a replay under
another thread count or device and the stored checkpoint; d_ref the smallest distance between the proof's
checkpoints and those of a second run with another seed (init and data order) at the same steps. The
proposal is delta = min(margin * eps_repr, sqrt(eps_repr * d_ref)): a safety margin over the honest noise,
but never past the geometric middle of the two. Normalised delta = delta / d_ref, what VerificationPolicy
takes. Because each interval's own update bounds the tolerance as well, the calibration also measures how
far honest replays miss the update (relative error, l1 and l2) and the momentum and buffers (state error),
and proposes those bounds with a margin of `relative_margin` (capped below 1: at 1 a replay that did not
move would pass).

Calibrate on a proof you trust (your own recording of the same setting), then verify others with
`--calibration`: measured on the proof under test, a fabricated proof would calibrate its own errors away.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from ..data import Dataset
from ..errors import ModeldeedError
from ..files import write_json_atomic
from ..models import build_model
from ..schema import Document, Hex64, load_document
from ..training import Hook, TrainState, train
from .checks import check_integrity, progress_bar, start_state
from .compare import Tolerance, compare
from .context import VerificationContext
from .distances import METRICS, check_metrics, distances, flatten
from .intervals import all_intervals, estimate_reference_distance, top_q_per_epoch, trained_vector
from .policy import VerificationPolicy
from .proof import load_proof
from .replay import replay
from .source import FullSource

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "modeldeed.pol.calibration"
FLOOR = 1e-7  # normalised delta (and relative error bound) when every replay was bit-exact
MAX_BOUND = 0.99


@dataclass(frozen=True)
class Calibration:
    proof_id: str
    metrics: tuple[str, ...]
    settings: tuple[str, ...]  # e.g. "cpu, 1 thread"
    intervals: tuple[int, ...]  # replayed under each setting
    reference_steps: tuple[int, ...]  # where d_ref was measured
    epsilon_repr: dict[str, float]
    d_ref: dict[str, float]
    d_ref_estimate: dict[str, float]  # the verifier's no-training estimate at the same steps, for comparison
    delta: dict[str, float]  # proposed, absolute
    normalised_delta: dict[str, float]  # delta / d_ref
    margin: float
    relative_error: dict[str, float] = field(default_factory=dict)  # largest error / update (l1, l2)
    state_error: dict[str, float] = field(default_factory=dict)  # largest momentum effect / buffer error
    max_relative_error: float = 0.5  # proposed bounds for VerificationPolicy
    max_buffer_error: float = 0.9
    errors: tuple[dict[str, Any], ...] = field(default=())  # per setting and interval

    @property
    def feasible(self) -> bool:
        return all(self.epsilon_repr[m] < self.d_ref[m] for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "version": 2,
            "proof_id": self.proof_id,
            "metrics": list(self.metrics),
            "settings": list(self.settings),
            "intervals": list(self.intervals),
            "reference_steps": list(self.reference_steps),
            "epsilon_repr": self.epsilon_repr,
            "d_ref": self.d_ref,
            "d_ref_estimate": self.d_ref_estimate,
            "delta": self.delta,
            "normalised_delta": self.normalised_delta,
            "margin": self.margin,
            "relative_error": self.relative_error,
            "state_error": self.state_error,
            "max_relative_error": self.max_relative_error,
            "max_buffer_error": self.max_buffer_error,
            "feasible": self.feasible,
            "errors": list(self.errors),
        }


NonNegative = Annotated[float, Field(ge=0)]
Metric = Literal["l1", "l2", "linf", "cos"]


class CalibrationDoc(Document):
    """`pol calibrate --out FILE`, as `pol verify --calibration FILE` reads it."""

    format: Literal["modeldeed.pol.calibration"]
    version: Literal[2]
    proof_id: Hex64
    metrics: Annotated[list[Metric], Field(min_length=1, max_length=4)]
    settings: list[Annotated[str, Field(max_length=256)]]
    intervals: list[Annotated[int, Field(ge=0)]]
    reference_steps: list[Annotated[int, Field(ge=0)]]
    epsilon_repr: dict[Metric, NonNegative]
    d_ref: dict[Metric, Annotated[float, Field(gt=0)]]
    d_ref_estimate: dict[Metric, NonNegative]
    delta: dict[Metric, NonNegative]
    normalised_delta: dict[Metric, Annotated[float, Field(gt=0)]]
    margin: Annotated[float, Field(ge=1)]
    relative_error: dict[str, NonNegative]
    state_error: dict[str, NonNegative]
    max_relative_error: Annotated[float, Field(gt=0, lt=1)]
    max_buffer_error: Annotated[float, Field(gt=0, lt=1)]
    feasible: bool
    errors: list[dict[str, Any]]


class _Stop(Exception):
    pass


class _ReferenceDistance(Hook):
    """Measures d(proof checkpoint, independent run) at the proof's checkpoint steps, then stops training."""

    def __init__(self, ctx: VerificationContext, steps: Sequence[int], metrics: Sequence[str]) -> None:
        self.ctx, self.steps, self.metrics = ctx, set(steps), metrics
        self.last = max(steps)
        self.found: dict[int, tuple[dict[str, float], dict[str, float]]] = {}

    def on_step_end(self, state: TrainState, batch: Any, loss: torch.Tensor) -> None:
        if state.step not in self.steps:
            return
        names = self.ctx.source.header.trained_parameters
        stored = self.ctx.source.checkpoint(self.ctx.source.checkpoint_steps.index(state.step))
        ours = trained_vector(stored, names)
        other = flatten(dict(state.model.named_parameters()), names)
        estimate = estimate_reference_distance(ours, stored, names, self.metrics)
        self.found[state.step] = (distances(ours, other, self.metrics), estimate)
        if state.step >= self.last:
            raise _Stop


def calibrate(
    directory: str | Path,
    data: Dataset,
    *,
    threads: Sequence[int] = (1, 2),
    devices: Sequence[str] = ("cpu",),
    q: int = 2,
    metrics: Sequence[str] = METRICS,
    reference_seed: int | None = None,
    reference_steps: int | None = None,
    margin: float = 10.0,
    relative_margin: float = 2.0,
    trust_code: bool = False,
    progress: bool = False,
) -> Calibration:
    """Replay the proof's Q largest intervals per epoch under each setting, train a reference run, propose bounds."""
    metrics = check_metrics(metrics)
    if margin < 1 or relative_margin < 1:
        raise ModeldeedError(f"margins must be >= 1, got {margin} and {relative_margin}")
    directory = Path(directory)
    proof, pid = load_proof(directory)
    source = FullSource(directory, proof, trust_code=trust_code)
    policy = VerificationPolicy(metrics=metrics)
    ctx = VerificationContext(directory, source, pid, data, policy, trust_code=trust_code)
    integrity = check_integrity(ctx)
    if integrity.status != "passed" or data.fingerprint != proof.header.dataset.fingerprint:
        raise ModeldeedError(
            f"{directory}: cannot calibrate on this proof: "
            + "; ".join(integrity.reasons or ("the dataset is not the proof's",))
        )
    if not ctx.intervals:
        raise ModeldeedError(f"{directory}: the proof has no interval to replay")
    assert ctx.model is not None
    chosen = (all_intervals if q <= 0 else top_q_per_epoch)(ctx.intervals, q, metrics, pid)
    names = [n for n, _ in ctx.model.named_parameters()]
    loose = Tolerance(
        "tolerance", metrics, {m: math.inf for m in metrics}, None, math.inf, math.inf, proof.header.config.momentum
    )
    errors, settings = [], []
    original_threads = torch.get_num_threads()
    plan = [(d, c) for d in devices for c in (threads if d == "cpu" else (original_threads,))]
    bar = progress_bar(len(plan) * len(chosen), "calibrate", progress)
    try:
        for device, count in plan:
            torch.set_num_threads(count)
            label = f"{device}, {count} thread{'s' if count != 1 else ''}"
            settings.append(label)
            for index in chosen:
                if bar is not None:
                    bar.set_postfix_str(f"{label}, interval {index}", refresh=False)
                start = start_state(ctx, index)
                steps = source.checkpoint_steps
                records = [(s, source.record(s)) for s in range(steps[index], steps[index + 1])]
                replayed = replay(
                    proof.header,
                    start,
                    records,
                    data,
                    source.samples(),
                    end_step=steps[index + 1],
                    model=ctx.model,
                    source=directory,
                    device=device,
                    trust_code=trust_code,
                )
                outcome = compare(
                    replayed, source.checkpoint(index + 1), start, proof.header.trained_parameters, names, loose
                )
                relative = {
                    m: ratio(outcome.error[m], outcome.replayed_update[m]) for m in ("l1", "l2") if m in metrics
                }
                errors.append(
                    {
                        "setting": label,
                        "interval": index,
                        "error": outcome.error,
                        "relative_error": {m: finite(v) for m, v in relative.items()},
                        "state_error": {g: finite(v) for g, v in outcome.state_error.items()},
                    }
                )
                log.info("%s, interval %d: %s", label, index, errors[-1])
                if bar is not None:
                    bar.update(1)
    finally:
        torch.set_num_threads(original_threads)
        if bar is not None:
            bar.close()
    epsilon = {m: max(e["error"][m] for e in errors) for m in metrics}
    relative_error = {m: max(e["relative_error"][m] for e in errors) for m in errors[0]["relative_error"]}
    state_error = {g: max(e["state_error"].get(g, 0.0) for e in errors) for g in errors[0]["state_error"]}
    relative_error = {m: finite(v) for m, v in relative_error.items()}
    state_error = {g: finite(v) for g, v in state_error.items()}
    steps = [s for s in source.checkpoint_steps[1:] if reference_steps is None or s <= reference_steps]
    if not steps:
        raise ModeldeedError(f"no checkpoint within the first {reference_steps} steps to measure d_ref at")
    found = reference_run(ctx, steps, metrics, reference_seed, devices[0], progress)
    d_ref = {m: min(found[s][0][m] for s in found) for m in metrics}
    estimate = {m: min(found[s][1][m] for s in found) for m in metrics}
    delta = {m: propose_delta(epsilon[m], d_ref[m], margin) for m in metrics}
    normalised = {m: delta[m] / d_ref[m] if d_ref[m] > 0 else float("inf") for m in metrics}
    return Calibration(
        pid,
        metrics,
        tuple(settings),
        tuple(chosen),
        tuple(sorted(found)),
        epsilon,
        d_ref,
        estimate,
        delta,
        normalised,
        margin,
        relative_error,
        state_error,
        propose_bound(max([*relative_error.values(), state_error.get("momentum", 0.0)]), relative_margin),
        propose_bound(state_error.get("buffers", 0.0), relative_margin),
        tuple(errors),
    )


def finite(value: float) -> float:
    return value if math.isfinite(value) else 1e308


def ratio(error: float, update: float) -> float:
    return error / update if update > 0 else (0.0 if error == 0 else math.inf)


def propose_delta(epsilon: float, d_ref: float, margin: float) -> float:
    if epsilon <= 0:
        return FLOOR * d_ref
    return min(margin * epsilon, math.sqrt(epsilon * d_ref))


def propose_bound(observed: float, margin: float) -> float:
    """A relative bound over the observed honest error, never at or above 1 (see the module docstring)."""
    if observed <= 0:
        return FLOOR
    return min(MAX_BOUND, margin * observed)


def reference_run(
    ctx: VerificationContext,
    steps: Sequence[int],
    metrics: Sequence[str],
    seed: int | None,
    device: str,
    progress: bool,
) -> dict[int, tuple[dict[str, float], dict[str, float]]]:
    """Train an independent model (another init and data order) up to the last step in `steps`."""
    header = ctx.source.header
    seed = header.config.seed + 1 if seed is None else seed
    config = dataclasses.replace(header.config, seed=seed, device=device)
    model = build_model(header.spec, seed=seed, trust_code=ctx.trust_code)
    named = dict(model.named_parameters())
    hook = _ReferenceDistance(ctx, steps, metrics)
    try:
        train(
            model,
            ctx.data,
            config,
            hooks=[hook],
            parameters=[named[n] for n in header.trained_parameters],
            progress=progress,
        )
    except _Stop:
        pass
    return hook.found


def save_calibration(path: str | Path, calibration: Calibration) -> None:
    write_json_atomic(path, calibration.to_json())


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file (`modeldeed.pol.calibration`, version 2)."""
    doc = load_document(CalibrationDoc, path)
    metrics = check_metrics(doc.metrics)
    missing = [m for m in metrics if m not in doc.normalised_delta or m not in doc.d_ref]
    if missing:
        raise ModeldeedError(f"{path}: field 'normalised_delta' or 'd_ref' lacks metrics {missing}")
    return Calibration(
        proof_id=doc.proof_id,
        metrics=metrics,
        settings=tuple(doc.settings),
        intervals=tuple(doc.intervals),
        reference_steps=tuple(doc.reference_steps),
        epsilon_repr=dict(doc.epsilon_repr),
        d_ref=dict(doc.d_ref),
        d_ref_estimate=dict(doc.d_ref_estimate),
        delta=dict(doc.delta),
        normalised_delta=dict(doc.normalised_delta),
        margin=doc.margin,
        relative_error=dict(doc.relative_error),
        state_error=dict(doc.state_error),
        max_relative_error=doc.max_relative_error,
        max_buffer_error=doc.max_buffer_error,
    )


__all__ = ["Calibration", "calibrate", "load_calibration", "save_calibration"]
