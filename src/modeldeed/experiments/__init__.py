"""The papers' experiments as functions returning plain results, and the end-to-end demo.

record = run_experiment("functionality", ExperimentSetting(data="digits", epochs=10), "runs/exp")
record.save("runs/exp")          # runs/exp/functionality.json, rendered by modeldeed.report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..progress import ProgressCallback, Tracker
from .notes import collected_warnings
from .setting import ExperimentRecord, ExperimentSetting, machine_description

EXPERIMENTS = ("functionality", "unremovability", "piracy", "transfer", "pol")

__all__ = ["EXPERIMENTS", "ExperimentRecord", "ExperimentSetting", "machine_description", "run_experiment"]


def run_experiment(
    name: str,
    setting: ExperimentSetting,
    out: str | Path,
    *,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> ExperimentRecord:
    """Run one experiment by name; `options` are that experiment's own (attack_epochs, target, ...).

    `progress` shows the training loop's own bars; `on_progress` hears which item of the plan (a model to train,
    an attack, a spoof) starts, with its weight (see `experiments.plan`).
    """
    from .plan import experiment_plan

    if name not in EXPERIMENTS:
        raise ModeldeedError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    if name == "pol":
        from .pol import pol as function
    else:
        from . import watermark

        function = getattr(watermark, name)
    Path(out).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(f"experiment {name}", experiment_plan(name, setting, out, **options), on_progress)
    notes: list[str] = []
    with collected_warnings(notes, "modeldeed.attacks"):
        record = function(setting, out, progress=progress, tracker=tracker, **options)
    tracker.finish()
    record.notes = notes
    record.save(out)
    return record
