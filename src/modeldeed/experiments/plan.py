"""What each experiment will do, item by item, with its cost in epochs of the owner's training.

The plan drives the progress reports (which model of how many, an ETA weighted by cost) and the estimate printed
before long runs (the plan's total times one measured epoch). Costs are estimates, measured as ratios on digits;
they never enter a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..attacks.planning import EVALUATION_EPOCHS, estimate_seconds, measure_epoch_seconds
from ..progress import Work
from .setting import ExperimentSetting

FINE_TUNINGS = ("FTLL", "FTAL", "RTLL", "RTAL")
PIRACY_TUNINGS = ("none", "FTAL", "RTAL")
# A spoof's cost in epochs of training the demo's model honestly (shortest proofs; the double ones twice that).
SPOOF_EPOCHS = {"zhang1": 25.0, "zhang2": 16.0, "zhang3": 6.0, "infinitesimal": 3.0, "blindfold": 3.0}


def owner_plan(setting: ExperimentSetting, out: str | Path) -> list[Work]:
    """Training the owner's three models, unless `out` already holds them for this setting."""
    from .owner import owner_is_cached

    if owner_is_cached(setting, out):
        return []
    e = setting.epochs
    return [
        Work("train No-WM (model 1 of 3)", e),
        Work("train FROMSCRATCH (model 2 of 3)", 1.1 * e),
        Work("train PRETRAINED (model 3 of 3)", 1.1 * max(2, e // 2)),
    ]


def experiment_plan(name: str, setting: ExperimentSetting, out: str | Path, **options: Any) -> list[Work]:
    """The items `run_experiment(name, setting, out, **options)` runs, in order."""
    e = setting.epochs
    a = options.get("attack_epochs") or e
    if name == "pol":
        methods = options.get("methods") or tuple(SPOOF_EPOCHS)
        return [
            Work("record the honest proof", 1.1 * e),
            Work("calibrate delta (replays at two thread counts)", 2.0 * e),
            Work("verify the honest proof (reference and hardened)", 2.6 * e),
        ] + [
            Work(f"spoof {m}, {length} proof", factor * (SPOOF_EPOCHS.get(m, 5.0) + 2.6 * e / 10))
            for m in methods
            for length, factor in (("shortest", 1.0), ("double", 2.0))
        ]
    plan = owner_plan(setting, out)
    if name == "functionality":
        plan.append(Work("evaluate the three models", 3 * EVALUATION_EPOCHS))
    elif name == "unremovability":
        plan += [
            Work(f"{t} on {m}", a + EVALUATION_EPOCHS) for m in ("FROMSCRATCH", "PRETRAINED") for t in FINE_TUNINGS
        ]
    elif name == "piracy":
        plan += [
            Work(f"piracy: embed TS-NEW, then {t}", e + (a if t != "none" else 0) + EVALUATION_EPOCHS)
            for t in PIRACY_TUNINGS
        ]
    elif name == "transfer":
        plan.append(Work("transfer (RTAL, new head)", a + EVALUATION_EPOCHS))
    return plan


def estimate_experiment_seconds(name: str, setting: ExperimentSetting, out: str | Path, **options: Any) -> float:
    """The plan's cost times one epoch of the owner's training, measured here on a few steps."""
    from ..models import build_model, spec_for_data
    from .owner import experiment_data, training_config

    data = experiment_data(setting)
    spec = spec_for_data(setting.model, data.train.input_shape, data.train.num_classes)
    epoch = measure_epoch_seconds(build_model(spec, seed=setting.seed), data.train, training_config(setting))
    return estimate_seconds(experiment_plan(name, setting, out, **options), epoch)
