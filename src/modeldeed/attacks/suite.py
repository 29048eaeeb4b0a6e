"""The removal suite: every attack at a few strengths, one list of results (what a serious audit runs).

The menu follows the paper (FTLL, FTAL, RTLL, RTAL, ownership piracy, transfer learning) and the
Watermark-Robustness-Toolbox study (fine-pruning, weight pruning, quantization, noise, distillation,
input preprocessing). Every entry is judged by the base class with the same verifier and rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..data import Dataset, DataSplits
from ..errors import ModeldeedError
from ..progress import ProgressCallback, Tracker
from ..training import TrainConfig
from .base import Attack, AttackResult, Verifier
from .distill import Distillation
from .finetune import FTAL, FTLL, RTAL, RTLL, from_scratch_settings, paper_settings
from .perturb import GaussianNoise, WeightQuantization
from .piracy import OwnershipPiracy
from .preprocess import InputPreprocessing
from .pruning import FinePruning, MagnitudePruning
from .transfer import TransferLearning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteEntry:
    """One attack of the suite with its label; `target` entries run on the transfer target's data."""

    label: str
    attack: Attack
    target: bool = False


@dataclass(frozen=True)
class SuiteResult:
    label: str
    result: AttackResult

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, **self.result.to_json()}


def default_suite(
    training: TrainConfig | None = None,
    *,
    epochs: int | None = None,
    data_fraction: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> list[SuiteEntry]:
    """The standard menu. `training` is the owner's TrainConfig (the paper's settings derive from it);
    `epochs` overrides the number of epochs of every training attack (e.g. for a quick audit)."""
    training = training or TrainConfig()
    common: dict[str, Any] = {"data_fraction": data_fraction, "seed": seed, "device": device, "progress": progress}
    tuned = {**paper_settings(training), **common}
    scratch = {**from_scratch_settings(training), **common}
    if epochs is not None:
        tuned["epochs"] = scratch["epochs"] = epochs
        scratch["lr_milestones"] = tuple(m for m in scratch["lr_milestones"] if m < epochs)
    short = {**tuned, "epochs": max(1, tuned["epochs"] // 4) if tuned["epochs"] else 0}
    entries = [
        SuiteEntry("ftll", FTLL(**tuned)),
        SuiteEntry("ftal", FTAL(**tuned)),
        SuiteEntry("rtll", RTLL(**tuned)),
        SuiteEntry("rtal", RTAL(**tuned)),
        SuiteEntry("piracy", OwnershipPiracy(finetune="none", **tuned)),
        SuiteEntry("piracy-ftal", OwnershipPiracy(finetune="ftal", **tuned)),
        SuiteEntry("piracy-rtal", OwnershipPiracy(finetune="rtal", **tuned)),
        SuiteEntry("transfer", TransferLearning(**tuned), target=True),
        SuiteEntry("fine-prune-0.5", FinePruning(fraction=0.5, **short)),
        SuiteEntry("fine-prune-0.8", FinePruning(fraction=0.8, **short)),
    ]
    entries += [SuiteEntry(f"prune-{s:g}", MagnitudePruning(sparsity=s, **common)) for s in (0.3, 0.6, 0.9)]
    entries += [SuiteEntry(f"quantize-{b}bit", WeightQuantization(bits=b, **common)) for b in (8, 4, 2)]
    entries += [SuiteEntry(f"noise-{s:g}", GaussianNoise(std=s, **common)) for s in (0.1, 0.3, 1.0)]
    entries += [
        SuiteEntry("distill-hard", Distillation(soft=False, **scratch)),
        SuiteEntry("distill-soft", Distillation(soft=True, **scratch)),
        SuiteEntry("preprocess-quantize-3bit", InputPreprocessing(bits=3, **common)),
        SuiteEntry("preprocess-blur-0.5", InputPreprocessing(blur_sigma=0.5, **common)),
        SuiteEntry("preprocess-blur-1", InputPreprocessing(blur_sigma=1.0, **common)),
        SuiteEntry("preprocess-noise-0.05", InputPreprocessing(noise_std=0.05, **common)),
        SuiteEntry("preprocess-noise-0.1", InputPreprocessing(noise_std=0.1, **common)),
    ]
    return entries


def select(entries: Sequence[SuiteEntry], names: Sequence[str]) -> list[SuiteEntry]:
    """Entries whose label or attack name is in `names` (e.g. ["ftal", "prune", "distill-soft"])."""
    wanted = set(names)
    known = {e.label for e in entries} | {e.attack.name for e in entries}
    unknown = sorted(wanted - known)
    if unknown:
        raise ModeldeedError(f"unknown suite attacks {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [e for e in entries if e.label in wanted or e.attack.name in wanted]


def run_suite(
    model: nn.Module,
    data: Dataset | DataSplits,
    *,
    test: Dataset,
    verifier: Verifier,
    entries: Sequence[SuiteEntry] | None = None,
    target: Dataset | DataSplits | None = None,
    on_result: Callable[[SuiteEntry, nn.Module, AttackResult], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[SuiteResult]:
    """Run every entry against `model` (each on its own copy) and return the results in order.

    Entries that need a transfer `target` are skipped (with a log line) when none is given.
    `on_result(entry, attacked_model, result)` is called after each, e.g. to save models as they come;
    `on_progress` as each attack starts (which one, n of N, work done: see `modeldeed.progress`).
    """
    from .planning import suite_plan

    chosen = list(entries if entries is not None else default_suite())
    skipped = [e.label for e in chosen if e.target and target is None]
    if skipped:
        log.warning("suite: skipping %s: no transfer target dataset was given (--target NAME)", ", ".join(skipped))
    chosen = [e for e in chosen if not (e.target and target is None)]
    tracker = Tracker("attack", suite_plan(chosen), on_progress)
    results = []
    for entry in chosen:
        with tracker.item():
            attacked, result = entry.attack(
                model,
                target if entry.target else data,
                test=test,  # type: ignore[arg-type]
                verifier=verifier,
            )
        results.append(SuiteResult(entry.label, result))
        if on_result is not None:
            on_result(entry, attacked, result)
    tracker.finish()
    return results
