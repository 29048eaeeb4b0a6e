"""The intervals between checkpoints: their update sizes, which of them to replay, and the d_ref scale.

Interval selection is a plain function `(intervals, q, metrics, proof_id) -> indices`, so a verifier
can swap the paper's "Q largest updates per epoch" for another rule (e.g. a Fiat-Shamir draw seeded by
the proof id) without touching the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .distances import distances, flatten
from .state import MODEL_PREFIX


@dataclass(frozen=True)
class IntervalInfo:
    """Checkpoints `index` and `index + 1`: steps start_step..end_step, in the epoch where it starts."""

    index: int
    start_step: int
    end_step: int
    epoch: int
    update: Mapping[str, float]  # d(W_start, W_end) per metric, over the trained parameters

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "epoch": self.epoch,
            "update": dict(self.update),
        }


IntervalSelector = Callable[[Sequence[IntervalInfo], int, Sequence[str], str], list[int]]


def trained_vector(tensors: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The named parameters of a checkpoint (model/ tensors), concatenated as one float64 vector."""
    return flatten({k.removeprefix(MODEL_PREFIX): v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}, names)


def update_sizes(
    checkpoint: Callable[[int], Mapping[str, torch.Tensor]],
    steps: Sequence[int],
    names: Sequence[str],
    steps_per_epoch: int,
    metrics: Sequence[str],
    on_checkpoint: Callable[[int, Mapping[str, torch.Tensor]], None] | None = None,
) -> list[IntervalInfo]:
    """Decode every checkpoint in order (`checkpoint(i)`, at step `steps[i]`) and measure every interval's update."""
    out = []
    previous: torch.Tensor | None = None
    for index, step in enumerate(steps):
        tensors = checkpoint(index)
        if on_checkpoint is not None:
            on_checkpoint(index, tensors)
        current = trained_vector(tensors, names)
        if previous is not None:
            start = steps[index - 1]
            out.append(
                IntervalInfo(index - 1, start, step, start // steps_per_epoch, distances(previous, current, metrics))
            )
        previous = current
    return out


class StraightLines:
    """Collects the indices i where the updates of intervals i and i+1 are parallel (cosine >= 1 - cosine_tolerance)
    and of equal l2 size (within size_tolerance): pieces of one straight line, which training never produces.
    Fed every checkpoint's trained vector in order (`add`), during the one pass that decodes them all."""

    def __init__(self, cosine_tolerance: float = 1e-4, size_tolerance: float = 1e-3) -> None:
        self.cosine_tolerance, self.size_tolerance = cosine_tolerance, size_tolerance
        self.pairs: list[int] = []
        self._vector: torch.Tensor | None = None
        self._update: torch.Tensor | None = None
        self._count = 0

    def add(self, vector: torch.Tensor) -> None:
        if self._vector is not None:
            update = vector - self._vector
            if self._update is not None:
                a, b = float(self._update.norm()), float(update.norm())
                if a > 0 and b > 0:
                    cosine = float(self._update @ update) / (a * b)
                    if cosine >= 1 - self.cosine_tolerance and abs(a - b) <= self.size_tolerance * max(a, b):
                        self.pairs.append(self._count - 2)
            self._update = update
        self._vector = vector
        self._count += 1


def top_q_per_epoch(intervals: Sequence[IntervalInfo], q: int, metrics: Sequence[str], proof_id: str) -> list[int]:
    """The paper's rule: per epoch and per metric the Q largest updates, united; every interval if Q <= 0."""
    if q <= 0:
        return [i.index for i in intervals]
    chosen: set[int] = set()
    for epoch in sorted({i.epoch for i in intervals}):
        members = [i for i in intervals if i.epoch == epoch]
        for metric in metrics:
            ranked = sorted(members, key=lambda i: (-i.update[metric], i.index))
            chosen.update(i.index for i in ranked[:q])
    return sorted(chosen)


def outliers(intervals: Sequence[IntervalInfo], q: int, metric: str = "l2") -> list[int]:
    """The q intervals whose update is largest relative to the median update of their epoch (ties: earlier first).

    A lone jump (a stolen model reached in one interval) stands out against its own epoch however late it comes,
    where honest updates have shrunk; q intervals cost the same whatever the proof's length.
    """
    import statistics

    medians: dict[int, float] = {}
    for epoch in {i.epoch for i in intervals}:
        medians[epoch] = statistics.median(i.update[metric] for i in intervals if i.epoch == epoch)

    def ratio(info: IntervalInfo) -> float:
        median = medians[info.epoch]
        return info.update[metric] / median if median > 0 else (0.0 if info.update[metric] == 0 else float("inf"))

    ranked = sorted(intervals, key=lambda i: (-ratio(i), i.index))
    return sorted(i.index for i in ranked[: max(q, 0)])


def all_intervals(intervals: Sequence[IntervalInfo], q: int, metrics: Sequence[str], proof_id: str) -> list[int]:
    return [i.index for i in intervals]


def estimate_reference_distance(
    vector: torch.Tensor,
    tensors: Mapping[str, torch.Tensor],
    names: Sequence[str],
    metrics: Sequence[str],
    seed: int = 0,
) -> dict[str, float]:
    """d_ref without a second training run: the distance from W to W with each tensor's entries shuffled.

    Two independently trained models have (per layer) the same distribution of weights but unrelated
    entries, which is what a within-tensor shuffle produces. On digits/cnn this estimate is within a few
    per cent of the distance between two real independent runs; `calibrate` measures the real one.
    """
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for name in names:
        t = tensors[MODEL_PREFIX + name].detach().to("cpu", torch.float64).reshape(-1)
        parts.append(t[torch.randperm(t.numel(), generator=generator)])
    shuffled = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return distances(vector, shuffled, metrics)
