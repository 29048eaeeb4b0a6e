"""`attack suite --engine ray`: each attack of the suite as one task, described by the command's plain options.

A worker loads the model, the data and the key itself from the paths the options name (through the same
loaders as the serial command), builds the same suite entries, runs the one it is given and returns the
attack's result as the JSON values results.json holds. Every attack seeds its own random choices, so a
result does not depend on which attacks ran before it in the same process: the results equal the serial run's
(except `wall_seconds`, a measurement). With --save-models a worker writes OUT/LABEL itself: on a cluster of
several machines OUT must be a shared folder.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..engine import Engine
from ..errors import ModeldeedError

# the options of `attack suite` a worker needs; all are strings, numbers, booleans or None
TASK_OPTIONS = (
    "model_dir",
    "key",
    "data",
    "data_dir",
    "target",
    "target_dir",
    "epochs",
    "data_fraction",
    "seed",
    "device",
    "trust_model_code",
    "save_models",
    "out",
)


@dataclass(frozen=True)
class SuiteTask:
    label: str
    options: dict[str, Any]
    threads: int


def run_suite_on_engine(
    args: argparse.Namespace, engine: Engine, labels: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The results (as results.json holds them) of the attacks `labels`, one engine task each, in order, and the
    attacks' notes."""
    options = {name: getattr(args, name) for name in TASK_OPTIONS}
    for name in ("model_dir", "key", "out", "data_dir", "target_dir"):
        if options[name] is not None:
            options[name] = str(Path(options[name]).resolve())
    tasks = [SuiteTask(label, options, torch.get_num_threads()) for label in labels]
    gpus = 1.0 if args.device.startswith("cuda") else 0.0
    answers = engine.map(run_suite_task, tasks, gpus=gpus)
    if not args.json:
        for answer in answers:
            doc = answer["result"]
            verdict = "WATERMARK REMOVED" if doc["watermark_removed"] else "watermark not removed"
            print(f"{doc['label']}: test accuracy {doc['test_accuracy_after']:.4f}; {verdict}")
    return [answer["result"] for answer in answers], [n for answer in answers for n in answer["notes"]]


def run_suite_task(task: SuiteTask) -> dict[str, Any]:
    """Run on a worker: one attack of the suite; returns {"result": its results.json entry, "notes": [...]}."""
    from ..attacks import SuiteResult
    from ..data import load_dataset
    from ..experiments.notes import collected_warnings
    from .attack_cmd import _load, save_attacked, suite_entries

    torch.set_num_threads(task.threads)
    args = argparse.Namespace(**task.options, threads=None, no_progress=True, only=None, tuning=False)
    model, info, data, verifier = _load(args)
    found = [e for e in suite_entries(args, info) if e.label == task.label]
    if not found:
        raise ModeldeedError(f"the suite has no attack labelled {task.label!r}")
    entry = found[0]
    target = load_dataset(args.target, args.target_dir) if entry.target else None
    notes: list[str] = []
    with collected_warnings(notes, "modeldeed.watermark"):
        attacked, result = entry.attack(
            model, target if entry.target else data.train, test=data.test, verifier=verifier
        )
    if args.save_models:
        save_attacked(Path(args.out) / entry.label, attacked, info, result, args.model_dir, model)
    return {"result": SuiteResult(entry.label, result).to_json(), "notes": notes}
