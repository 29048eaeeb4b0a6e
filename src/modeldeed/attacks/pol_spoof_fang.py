"""Fang et al.'s spoofs: infinitesimal update and blindfold top-Q (IEEE EuroS&P 2023).

Paper: C. Fang, H. Jia, A. Thudi, M. Yaghini, C. A. Choquette-Choo, N. Dullerud, V. Chandrasekaran,
N. Papernot, "Proof-of-Learning is Currently More Broken Than You Think".
Threat model: as Zhang et al.'s, but the data is never modified: every batch is a real, unmodified batch of
the training set (indices only), so a check of the data alone cannot catch these spoofs.

- `InfinitesimalUpdate`: sort-trick W0, checkpoints on the straight line to W_T so close together that a
  replay of any interval, whatever its real batches do, stays within delta. No gradient is ever computed.
- `BlindfoldTopQ`: per epoch, the first q intervals are honest training steps (real batches, the real
  `sgd_step`), so they replay exactly; the rest of the epoch interpolates from where the honest steps ended
  to the next point of the straight line, in updates smaller than the honest ones. A verifier that replays
  only the Q largest updates of each epoch (Q <= q) replays exactly the honest ones.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import ClassVar

from ..errors import ModeldeedError
from ..training import TrainConfig, make_optimizer
from .pol_spoof import (
    METRICS,
    ProofSpoof,
    SpoofCheckpoint,
    SpoofContext,
    SpoofedTrajectory,
    SpoofStep,
    checkpoint_steps,
    distances,
    flat_state,
    interpolate_state,
    load_momentum,
    momentum_buffers,
    progress_bar,
    state_of,
    zero_momentum,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class InfinitesimalUpdate(ProofSpoof):
    """Fang et al.'s infinitesimal update: line checkpoints within margin·delta, unmodified real batches.

    Extra argument:
        lr_scale (float): when `lr` is not given, the declared learning rate is the claimed one times this.
            A replay moves off the line by about k steps at the declared rate and must stay within the slack
            (1 - margin)·delta; the claimed rate alone can exceed it, so the updates are made infinitesimal.
            Default: 0.01.
    """

    name: ClassVar[str] = "infinitesimal"

    lr_scale: float = 0.01

    def declared_config(self, claimed: TrainConfig, epochs: int) -> TrainConfig:
        config = super().declared_config(claimed, epochs)
        return config if self.lr is not None else dataclasses.replace(config, lr=claimed.lr * self.lr_scale)

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config = context.config
        total = config.epochs * config.steps_per_epoch(len(context.data))
        marks = checkpoint_steps(total, context.k)
        model = context.fresh_model()
        zeros = zero_momentum(model)
        per_epoch = config.steps_per_epoch(len(context.data))
        for start in marks[:-1]:
            trajectory.checkpoints.append(SpoofCheckpoint(start, context.anchor(start), zeros))
        trajectory.checkpoints.append(SpoofCheckpoint(total, context.anchor(total), zeros))
        for step in range(total):
            trajectory.steps.append(SpoofStep(context.step_indices(step), config.lr_at(step // per_epoch)))
        context.details["intervals"] = len(marks) - 1


@dataclass(frozen=True, kw_only=True)
class BlindfoldTopQ(ProofSpoof):
    """Fang et al.'s blindfold top-Q: q honest intervals per epoch, the rest interpolated.

    Extra argument:
        q (int): honest intervals at the start of every epoch; must be >= the verifier's Q. Default: 2.

    The honest intervals must be the largest of their epoch in every metric the verifier ranks by;
    `details["honest_are_largest"]` counts the epochs where that holds (the attacker's own check).
    """

    name: ClassVar[str] = "blindfold"

    q: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.q < 1:
            raise ModeldeedError(f"{self.name}: q must be >= 1, got {self.q}")

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config = context.config
        per_epoch = config.steps_per_epoch(len(context.data))
        total = config.epochs * per_epoch
        marks = checkpoint_steps(total, context.k)
        intervals = list(zip(marks[:-1], marks[1:]))
        epochs: dict[int, list[tuple[int, int]]] = {}
        for start, end in intervals:
            epochs.setdefault(start // per_epoch, []).append((start, end))
        crowded = [e for e, group in epochs.items() if len(group) <= self.q]
        if crowded:
            raise ModeldeedError(
                f"{self.name}: epoch {crowded[0]} has {len(epochs[crowded[0]])} intervals, not more "
                f"than q = {self.q}; declare a smaller batch size or k"
            )
        model = context.fresh_model()
        bar = progress_bar(sum(min(self.q, len(v)) * context.k for v in epochs.values()), self.name, context.progress)
        largest = 0
        sizes: list[dict[str, float]] = []
        try:
            for epoch in sorted(epochs):
                group = epochs[epoch]
                honest, rest = group[: self.q], group[self.q :]
                start_state = context.anchor(group[0][0])
                model.load_state_dict(start_state)
                optimizer = make_optimizer(model.parameters(), config)
                momentum = zero_momentum(model)
                load_momentum(optimizer, model, momentum)
                honest_sizes = []
                for start, end in honest:
                    before = state_of(model)
                    trajectory.checkpoints.append(SpoofCheckpoint(start, before, momentum_buffers(optimizer, model)))
                    for step in range(start, end):
                        indices = context.step_indices(step)
                        lr = config.lr_at(step // per_epoch)
                        x, y = context.batch(indices)
                        context.train_step(model, optimizer, x, y, lr)
                        trajectory.steps.append(SpoofStep(indices, lr))
                        if bar is not None:
                            bar.update(1)
                    honest_sizes.append(distances(flat_state(model, before), flat_state(model, state_of(model))))
                reached = state_of(model)
                end_state = context.anchor(group[-1][1])
                span = group[-1][1] - (honest[-1][1] if honest else group[0][0])
                fake_sizes = []
                origin = honest[-1][1] if honest else group[0][0]
                for start, end in rest:
                    a = interpolate_state(reached, end_state, (start - origin) / span)
                    b = interpolate_state(reached, end_state, (end - origin) / span)
                    trajectory.checkpoints.append(SpoofCheckpoint(start, a, zero_momentum(model)))
                    for step in range(start, end):
                        trajectory.steps.append(SpoofStep(context.step_indices(step), config.lr_at(step // per_epoch)))
                    fake_sizes.append(distances(flat_state(model, a), flat_state(model, b)))
                if all(
                    min(h[m] for h in honest_sizes) > max((f[m] for f in fake_sizes), default=0.0)
                    for m in METRICS
                    if m in self.delta
                ):
                    largest += 1
                sizes.append(
                    {
                        "honest_min_l2": min(h["l2"] for h in honest_sizes),
                        "interpolated_max_l2": max((f["l2"] for f in fake_sizes), default=0.0),
                    }
                )
        finally:
            if bar is not None:
                bar.close()
        trajectory.checkpoints.append(SpoofCheckpoint(total, context.anchor(total), zero_momentum(model)))
        context.details.update(
            {"intervals": len(intervals), "epochs": len(epochs), "honest_are_largest": largest, "update_sizes": sizes}
        )
        if largest < len(epochs):
            log.warning(
                "%s: in %d of %d epochs an interpolated update is not smaller than every honest one; "
                "declare a smaller batch size or more epochs",
                self.name,
                len(epochs) - largest,
                len(epochs),
            )
