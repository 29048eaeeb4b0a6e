"""Comparing a replay's end state with the stored next checkpoint: exactly, within a tolerance, or the paper's way.

- exact: every tensor of the next checkpoint (weights, buffers, momentum, RNG, schedule) must be reproduced
  bit for bit, and the replay must hold exactly the same tensors. Used when the verifier's environment is
  the recorded one, where an honest replay is bit-identical.
- tolerance: elsewhere. Every bound is a fraction of what the verifier re-derived, never of what the
  prover stored (a prover who inflated the stored update would otherwise widen his own tolerance):
  * the trained weights land within the smaller of delta x d_ref (the paper's rule) and `max_relative`
    times the replayed update d(replay, start) in l1 and l2; a fabricated interval whose stored end is off
    the real update by a fraction r of it fails for r > max_relative, a replay that did not move (r = 1)
    always;
  * the momentum M stored at the end may differ from the replayed D only by what, carried into the next
    steps, moves the weights by at most `max_relative` of the replayed update: lr · mu/(1 - mu) · |M - D| (the
    total a momentum difference adds over the following steps: lr · sum_j mu^j);
  * floating-point buffers (BatchNorm's running statistics, which training in train mode never reads) within
    `max_buffer` of their replayed change;
  * everything else exactly: tensors not trained, integer buffers (BatchNorm's batch counter), the RNG state
    (dropout draws as many numbers whatever the values), the schedule position.
- reference: the paper's check, kept for comparison: only the trained weights, within delta x d_ref; the rest
  of the state is whatever the checkpoint says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .distances import distances
from .intervals import estimate_reference_distance, trained_vector
from .state import MODEL_PREFIX, OPTIMIZER_PREFIX, RNG_CUDA, SCHEDULER_LR, differing, same_bits

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")  # Adam's step count is compared exactly

RELATIVE_METRICS = ("l1", "l2")


@dataclass(frozen=True)
class Comparison:
    update: dict[str, float]  # stored: d(start, end)
    replayed_update: dict[str, float]  # re-derived: d(start, replay)
    error: dict[str, float]  # d(replay, end)
    d_ref: dict[str, float]
    threshold: dict[str, float]
    state_error: dict[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Tolerance:
    """The bounds of one comparison mode (see the module docstring)."""

    mode: str  # "exact", "tolerance" or "reference"
    metrics: Sequence[str]
    delta: Mapping[str, float]  # normalised by d_ref
    d_ref: Mapping[str, float] | None = None  # absolute (calibrated); None: estimated per interval
    max_relative: float | None = None
    max_buffer: float | None = None
    momentum: float = 0.0  # the declared SGD momentum mu


def compare(
    replayed: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    trained: Sequence[str],
    parameters: Sequence[str],
    bounds: Tolerance,
) -> Comparison:
    """How far the replay's end state is from the stored next checkpoint, and what is wrong with it.

    `trained` are the trained parameters, `parameters` all of the model's (the others are buffers).
    """
    metrics = tuple(bounds.metrics)
    target, got, origin = (trained_vector(t, trained) for t in (end, replayed, start))
    error = distances(got, target, metrics)
    update = distances(origin, target, metrics)
    replayed_update = distances(origin, got, metrics)
    problems: list[str] = []
    if bounds.mode == "exact":  # no scale needed: every bit must be the same
        threshold = {m: 0.0 for m in metrics}
        d_ref = dict(bounds.d_ref) if bounds.d_ref is not None else {}
        differ = differing(replayed, end)
        if differ:
            shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
            problems.append(f"the replay does not reproduce the next checkpoint bit for bit: {shown} differ")
        return Comparison(update, replayed_update, error, d_ref, threshold, {}, tuple(problems))
    if bounds.d_ref is not None:
        d_ref = dict(bounds.d_ref)
    else:
        d_ref = estimate_reference_distance(target, end, trained, metrics)
    threshold = {m: bounds.delta[m] * d_ref[m] for m in metrics}
    if bounds.mode == "tolerance" and bounds.max_relative is not None:
        for m in RELATIVE_METRICS:
            if m in threshold:
                threshold[m] = min(threshold[m], bounds.max_relative * replayed_update[m])
    over = [m for m in metrics if not error[m] <= threshold[m]]
    if over:
        problems.append(
            "the replay ends too far from the stored checkpoint: "
            + "; ".join(
                f"{m} distance {error[m]:.4g} > {threshold[m]:.4g}{why(m, error, replayed_update, d_ref, bounds)}"
                for m in over
            )
        )
    state_error: dict[str, float] = {}
    if bounds.mode == "tolerance":
        scale = replayed_update.get("l2") or float(distances(origin, got, ("l2",))["l2"])
        problems.extend(state_problems(replayed, end, start, trained, parameters, bounds, scale, state_error))
    return Comparison(update, replayed_update, error, d_ref, threshold, state_error, tuple(problems))


def why(
    m: str, error: Mapping[str, float], replayed: Mapping[str, float], d_ref: Mapping[str, float], bounds: Tolerance
) -> str:
    parts = []
    if d_ref.get(m, 0) > 0:
        parts.append(f"{error[m] / d_ref[m]:.3g} of d_ref, allowed {bounds.delta[m]:.3g}")
    if bounds.mode == "tolerance" and bounds.max_relative is not None and m in RELATIVE_METRICS:
        share = ratio(error[m], replayed[m])
        parts.append(f"{share:.3g} of the interval's own (replayed) update, allowed {bounds.max_relative:g}")
    return f" ({'; '.join(parts)})" if parts else ""


def ratio(error: float, scale: float) -> float:
    return error / scale if scale > 0 else (0.0 if error == 0 else float("inf"))


def flat(tensors: Mapping[str, torch.Tensor], names: Sequence[str], like: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The named tensors as one float64 vector; a name `tensors` lacks counts as zeros (momentum before a step)."""
    return torch.cat(
        [
            tensors[n].detach().double().reshape(-1)
            if n in tensors
            else torch.zeros(like[n].numel(), dtype=torch.float64)
            for n in names
        ]
    )


def state_problems(
    replayed: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    trained: Sequence[str],
    parameters: Sequence[str],
    bounds: Tolerance,
    scale: float,
    state_error: dict[str, float],
) -> list[str]:
    """Tolerance mode, everything but the trained weights: the same tensors, exact where exactness does not
    depend on floating-point order, within bounds that the module docstring derives where it does."""
    problems = []
    names_replayed = {n for n in replayed if n != RNG_CUDA or RNG_CUDA in end}
    names_end = {n for n in end if n != RNG_CUDA or RNG_CUDA in replayed}
    if names_replayed != names_end:
        extra, missing = sorted(names_replayed - names_end), sorted(names_end - names_replayed)
        problems.append(
            f"the next checkpoint holds other tensors than the replay produces (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    trained_keys = {MODEL_PREFIX + n for n in trained}
    parameter_keys = {MODEL_PREFIX + n for n in parameters}
    momentum, buffers, exact_wrong = [], [], []
    for name in sorted(names_replayed & names_end):
        a, b = replayed[name], end[name]
        if name in trained_keys:
            continue
        key = name.removeprefix(OPTIMIZER_PREFIX).partition("/")[0] if name.startswith(OPTIMIZER_PREFIX) else None
        if key == "momentum_buffer" and a.is_floating_point():
            momentum.append(name)
        elif key in ADAM_MOMENTS and a.is_floating_point():
            buffers.append(name)  # Adam's moments: within the buffer bound of their own replayed change
        elif name.startswith(MODEL_PREFIX) and a.is_floating_point() and name not in parameter_keys:
            buffers.append(name)
        elif not same_bits(a, b):
            exact_wrong.append(name)
    if exact_wrong:
        problems.append(
            "tensors that every replay reproduces exactly differ from the next checkpoint: "
            + ", ".join(exact_wrong[:4])
        )
    assert bounds.max_relative is not None and bounds.max_buffer is not None
    if momentum and bounds.momentum > 0:
        lr = float(end[SCHEDULER_LR]) if SCHEDULER_LR in end else 0.0
        carried = lr * bounds.momentum / (1 - bounds.momentum)
        difference = float((flat(replayed, momentum, end) - flat(end, momentum, end)).norm())
        state_error["momentum"] = ratio(carried * difference, scale)
        if not state_error["momentum"] <= bounds.max_relative:
            problems.append(
                f"the stored momentum differs from the replayed one by enough to move the next steps' weights by "
                f"{state_error['momentum']:.3g} of this interval's own update (allowed {bounds.max_relative:g})"
            )
    if buffers:
        a, b, s = flat(replayed, buffers, end), flat(end, buffers, end), flat(start, buffers, end)
        state_error["buffers"] = ratio(float((a - b).norm()), float((a - s).norm()))
        if not state_error["buffers"] <= bounds.max_buffer:
            problems.append(
                f"the replayed buffers ({', '.join(n.removeprefix(MODEL_PREFIX) for n in buffers[:2])} ...) miss the "
                f"stored ones by {state_error['buffers']:.3g} of their replayed change (allowed {bounds.max_buffer:g})"
            )
    return problems
