"""How long an attack suite (or any plan of training work) will take, before it starts.

Costs are counted in epochs of training over the adversary's data (`Attack.planned_epochs`), plus a little for
the evaluations every attack ends with; one epoch's seconds are measured on the model itself (a few timed SGD
steps on a copy). The product is an estimate to print before long work, and the weights of a progress bar's
ETA; it never enters a result.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..data import Dataset
from ..progress import Work
from ..training import TrainConfig, make_optimizer, sgd_step

if TYPE_CHECKING:
    from .suite import SuiteEntry

# Test accuracy and Verify before and after, in epochs of training: forward passes over the test and trigger
# sets, measured on the digits cnn at 0.05 to 0.15 epochs.
EVALUATION_EPOCHS = 0.15


def suite_plan(entries: Sequence[SuiteEntry]) -> list[Work]:
    """One `Work` per suite entry, its cost in epochs of training (evaluations included)."""
    return [Work(e.label, e.attack.planned_epochs() + EVALUATION_EPOCHS) for e in entries]


def measure_epoch_seconds(
    model: nn.Module, data: Dataset, config: TrainConfig, *, steps: int = 5, warmup: int = 2
) -> float:
    """Seconds of one training epoch of `model` on `data` with `config`'s batch size, from a few timed steps.

    Runs on a copy (the model is left untouched) with the global RNG state saved and restored.
    """
    if len(data) == 0:
        return 0.0
    probe = copy.deepcopy(model).to(config.device)
    optimizer = make_optimizer(probe.parameters(), config)
    batch = min(config.batch_size, len(data))
    x, y = data.x[:batch].to(config.device), data.y[:batch].to(config.device)
    with torch.random.fork_rng(devices=[]):
        for _ in range(warmup):
            sgd_step(probe, optimizer, x, y, config.lr)
        started = time.perf_counter()
        for _ in range(steps):
            sgd_step(probe, optimizer, x, y, config.lr)
        per_step = (time.perf_counter() - started) / steps
    return per_step * config.steps_per_epoch(len(data))


def estimate_seconds(plan: Sequence[Work], epoch_seconds: float) -> float:
    """The plan's total cost (epochs) times the measured seconds per epoch."""
    return sum(max(w.cost, 0.0) for w in plan) * epoch_seconds


def describe_duration(seconds: float) -> str:
    """'about 40 s', 'about 12 min', 'about 2.5 h'."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
