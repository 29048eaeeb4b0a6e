"""Progress of long work as plain events: the library reports them, the command line draws them.

Long operations (an attack suite, an experiment, the demo) are a plan of items, each with an estimated
cost in some unit (epochs of training, usually). They take an `on_progress` callback and call it, through a
`Tracker`, as each item starts and once at the end; the event says which item of how many runs and how much
of the total cost is done, so whoever draws it can show "attack 3 of 12: rtal" and an ETA weighted by cost
(a pruning takes a second, a distillation minutes). Library code never prints: with no callback, a Tracker
only logs.

    tracker = Tracker("attack suite", [Work("ftal", 5.0), Work("prune-0.6", 0.1)], on_progress)
    for entry in entries:
        with tracker.item(entry.label):
            ...
    tracker.finish()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """One item of a plan: what it is, and its estimated cost (any unit, the same for every item)."""

    label: str
    cost: float


@dataclass(frozen=True)
class ProgressEvent:
    """Item `index` (0-based) of `count` starts, or, with index == count, the plan is finished.

    `done` and `total` are in the plan's cost unit; `elapsed` is seconds since the plan started.
    """

    task: str
    index: int
    count: int
    label: str
    done: float
    total: float
    elapsed: float

    @property
    def finished(self) -> bool:
        return self.index >= self.count

    def remaining_seconds(self) -> float | None:
        """Seconds left, extrapolated from the rate so far (None before 5 % of the work is done: too early to say)."""
        if self.done <= 0.05 * self.total or self.elapsed <= 0:
            return None
        return self.elapsed * max(self.total - self.done, 0.0) / self.done


ProgressCallback = Callable[[ProgressEvent], None]


class Tracker:
    """Walks a plan of `Work` items and reports each start (and the end) to `callback`."""

    def __init__(self, task: str, plan: Sequence[Work], callback: ProgressCallback | None = None) -> None:
        self.task = task
        self.plan = list(plan)
        self.callback = callback
        self.total = sum(max(w.cost, 0.0) for w in self.plan)
        self.done = 0.0
        self.index = 0
        self.started = time.perf_counter()

    def _emit(self, label: str) -> None:
        event = ProgressEvent(
            self.task,
            self.index,
            len(self.plan),
            label,
            self.done,
            self.total,
            time.perf_counter() - self.started,
        )
        if not event.finished:
            log.info("%s: [%d/%d] %s", self.task, event.index + 1, event.count, label)
        if self.callback is not None:
            self.callback(event)

    @contextmanager
    def item(self, label: str | None = None) -> Iterator[None]:
        """Run the next item of the plan (its label from the plan unless given)."""
        if self.index >= len(self.plan):
            raise IndexError(f"{self.task}: more items run than the {len(self.plan)} planned")
        work = self.plan[self.index]
        self._emit(label or work.label)
        yield
        self.done += max(work.cost, 0.0)
        self.index += 1

    def finish(self) -> None:
        self.done = self.total
        self.index = len(self.plan)
        self._emit("")
