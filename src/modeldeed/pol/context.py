"""What the verifier's checks share: results, one replayed interval's outcome, and the context they read.

Kept apart from the checks and the policy so that both can import it and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data import Dataset
from .initialisation import LayerTest
from .intervals import IntervalInfo

if TYPE_CHECKING:
    from ..engine import Engine
    from .challenge import Challenge
    from .commitment import ProofCommitment
    from .distributed import DatasetRef
    from .policy import VerificationPolicy
    from .source import ProofSource

MAX_LISTED = 5  # per check, name this many failing steps/intervals, then count the rest


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "passed", "failed" or "skipped"
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class IntervalResult:
    """One replayed interval: its update, the replay's distance to the stored checkpoint, and the bound.

    `mode` is "exact" (every bit of the next checkpoint must be reproduced), "tolerance" (within the
    threshold, the smaller of delta x d_ref and a fraction of the interval's own update) or "reference" (the
    paper's: trained weights within delta x d_ref, the rest of the state taken as stored). `selected_by`
    says why it was replayed: "challenge" (the uniform draw), "top-q" (largest updates) or both.
    """

    index: int
    start_step: int
    end_step: int
    epoch: int
    update: Mapping[str, float]
    error: Mapping[str, float]
    d_ref: Mapping[str, float]
    threshold: Mapping[str, float]  # absolute
    accepted: bool
    mode: str = "reference"
    state_error: Mapping[str, float] = field(default_factory=dict)  # momentum's effect, buffers (pol.compare)
    problems: tuple[str, ...] = ()
    selected_by: tuple[str, ...] = ()
    replayed_update: Mapping[str, float] = field(default_factory=dict)  # d(start, replay): the re-derived update

    @property
    def normalised_error(self) -> dict[str, float]:
        """error / d_ref per metric where d_ref is known (an exact replay needs none: its bound is 0)."""
        out = {}
        for m, e in self.error.items():
            if self.d_ref.get(m, 0) > 0:
                out[m] = e / self.d_ref[m]
            elif e == 0:
                out[m] = 0.0
        return out

    @property
    def relative_error(self) -> dict[str, float]:
        """error / the replayed update per metric (inf when the replay did not move but the checkpoint did)."""
        out = {}
        for m, e in self.error.items():
            u = self.replayed_update.get(m, self.update.get(m, float("nan")))
            out[m] = e / u if u > 0 else (0.0 if e == 0 else float("inf"))
        return out

    def to_json(self) -> dict[str, Any]:
        def finite(d: Mapping[str, float]) -> dict[str, float | str]:
            return {k: (v if v == v and abs(v) != float("inf") else str(v)) for k, v in d.items()}

        return {
            "index": self.index,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "epoch": self.epoch,
            "mode": self.mode,
            "selected_by": list(self.selected_by),
            "update": finite(self.update),
            "replayed_update": finite(self.replayed_update),
            "error": finite(self.error),
            "normalised_error": finite(self.normalised_error),
            "relative_error": finite(self.relative_error),
            "d_ref": finite(self.d_ref),
            "threshold": finite(self.threshold),
            "state_error": finite(self.state_error),
            "problems": list(self.problems),
            "accepted": self.accepted,
        }


@dataclass
class VerificationContext:
    """What the checks share: the proof (full or opened), the verifier's dataset, and results so far."""

    directory: Path
    source: ProofSource
    proof_id: str
    data: Dataset
    policy: VerificationPolicy
    device: str = "cpu"
    trust_code: bool = False
    progress: bool = False
    model: nn.Module | None = None
    intervals: list[IntervalInfo] = field(default_factory=list)  # update sizes where both ends are known
    layer_tests: list[LayerTest] = field(default_factory=list)
    interval_results: list[IntervalResult] = field(default_factory=list)
    commitment: ProofCommitment | None = None
    challenge: Challenge | None = None
    exact: bool = False  # replays must be bit-identical (the environment matches, or the policy says so)
    environment_differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the verdict says besides failures
    initial: dict[str, torch.Tensor] | None = None  # W_0's state as the seed makes it (built once, when needed)
    engine: Engine | None = None  # where replays run (`modeldeed.engine`); None: here, one after another
    data_ref: DatasetRef | None = None  # the dataset by name, for workers of a distributed engine

    @property
    def header(self):  # type: ignore[no-untyped-def]
        return self.source.header


Check = Callable[[VerificationContext], CheckResult]


def listed(problems: list[str], what: str) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more {what}"]


def result(name: str, reasons: list[str]) -> CheckResult:
    return CheckResult(name, "failed" if reasons else "passed", tuple(reasons))


def check_name(check: Check) -> str:
    return getattr(check, "__name__", "check").removeprefix("check_")
