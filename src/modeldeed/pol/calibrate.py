"""Choosing delta: measure eps_repr (honest replays elsewhere) and d_ref (an independent run), propose delta.

The PoL paper's rule is eps_repr < delta < d_ref. eps_repr is the largest distance between a replay
under another thread count or device and the stored checkpoint; d_ref the smallest distance between
the proof's checkpoints and those of a second run with another seed (init and data order) at the same
steps. The proposal is delta = min(margin * eps_repr, sqrt(eps_repr * d_ref)): a safety margin over the
honest noise, but never past the geometric middle of the two, which keeps delta as far below d_ref as
above eps_repr when the noise is large. Normalised delta = delta / d_ref, what VerificationPolicy takes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import Dataset
from ..errors import ModeldeedError
from ..files import read_json_object, write_json_atomic
from ..models import build_model
from ..training import Hook, TrainState, train
from ..validation import Fields
from .checks import VerificationContext, check_integrity
from .distances import METRICS, check_metrics, distances, flatten
from .intervals import all_intervals, estimate_reference_distance, top_q_per_epoch, trained_vector
from .proof import load_proof
from .replay import replay

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "modeldeed.pol.calibration"
FLOOR = 1e-7  # normalised delta when every replay was bit-exact


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
    errors: tuple[dict[str, Any], ...] = field(default=())  # per setting and interval

    @property
    def feasible(self) -> bool:
        return all(self.epsilon_repr[m] < self.d_ref[m] for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "version": 1,
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
            "feasible": self.feasible,
            "errors": list(self.errors),
        }


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
        proof = self.ctx.proof
        stored = self.ctx.store.checkpoint(self.ctx.store.index_of_step(state.step))
        ours = trained_vector(stored, proof)
        other = flatten(dict(state.model.named_parameters()), proof.header.trained_parameters)
        estimate = estimate_reference_distance(ours, stored, proof, self.metrics)
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
    trust_code: bool = False,
    progress: bool = False,
) -> Calibration:
    """Replay the proof's Q largest intervals per epoch under each setting, train a reference run, propose delta."""
    from .verify import VerificationPolicy

    metrics = check_metrics(metrics)
    if margin < 1:
        raise ModeldeedError(f"margin must be >= 1, got {margin}")
    directory = Path(directory)
    proof, pid = load_proof(directory)
    ctx = VerificationContext(directory, proof, pid, data, VerificationPolicy(metrics=metrics), trust_code=trust_code)
    integrity = check_integrity(ctx)
    if integrity.status != "passed" or data.fingerprint != proof.header.dataset.fingerprint:
        raise ModeldeedError(
            f"{directory}: cannot calibrate on this proof: "
            + "; ".join(integrity.reasons or ("the dataset is not the proof's",))
        )
    if not ctx.intervals:
        raise ModeldeedError(f"{directory}: the proof has no interval to replay")
    chosen = (all_intervals if q <= 0 else top_q_per_epoch)(ctx.intervals, q, metrics, pid)
    errors, settings = [], []
    original_threads = torch.get_num_threads()
    try:
        for device in devices:
            for count in threads if device == "cpu" else (original_threads,):
                torch.set_num_threads(count)
                label = f"{device}, {count} thread{'s' if count != 1 else ''}"
                settings.append(label)
                for index in chosen:
                    replayed = replay(
                        proof, ctx.store, data, index, trust_code=trust_code, device=device, model=ctx.model
                    )
                    target = trained_vector(ctx.store.checkpoint(index + 1), proof)
                    got = flatten(replayed, proof.header.trained_parameters)
                    errors.append({"setting": label, "interval": index, "error": distances(got, target, metrics)})
                    log.info("%s, interval %d: %s", label, index, errors[-1]["error"])
    finally:
        torch.set_num_threads(original_threads)
    epsilon = {m: max(e["error"][m] for e in errors) for m in metrics}
    steps = [c.step for c in proof.checkpoints[1:] if reference_steps is None or c.step <= reference_steps]
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
        tuple(errors),
    )


def propose_delta(epsilon: float, d_ref: float, margin: float) -> float:
    if epsilon <= 0:
        return FLOOR * d_ref
    return min(margin * epsilon, math.sqrt(epsilon * d_ref))


def reference_run(
    ctx: VerificationContext,
    steps: Sequence[int],
    metrics: Sequence[str],
    seed: int | None,
    device: str,
    progress: bool,
) -> dict[int, tuple[dict[str, float], dict[str, float]]]:
    """Train an independent model (another init and data order) up to the last step in `steps`."""
    header = ctx.proof.header
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
    """Read a calibration file; only what VerificationPolicy needs is required to be complete."""
    fields = Fields(read_json_object(path), path)
    fields.expect_format(CALIBRATION_FORMAT)
    metrics = check_metrics(fields.str_list("metrics"))

    def per_metric(key: str) -> dict[str, float]:
        obj = fields.object(key)
        return {m: obj.float(m, minimum=0.0) for m in metrics}

    return Calibration(
        proof_id=fields.hex64("proof_id"),
        metrics=metrics,
        settings=tuple(fields.str_list("settings")),
        intervals=tuple(fields.int_list("intervals", minimum=0)),
        reference_steps=tuple(fields.int_list("reference_steps", minimum=0)),
        epsilon_repr=per_metric("epsilon_repr"),
        d_ref=per_metric("d_ref"),
        d_ref_estimate=per_metric("d_ref_estimate"),
        delta=per_metric("delta"),
        normalised_delta=per_metric("normalised_delta"),
        margin=fields.float("margin", minimum=1.0),
    )
