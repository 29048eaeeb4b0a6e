"""What every experiment records about how it was run, so its numbers can be traced and repeated."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..files import write_json_atomic


@dataclass(frozen=True)
class ExperimentSetting:
    """The knobs shared by the papers' experiments, scaled to what a machine allows."""

    data: str = "digits"
    data_dir: str | None = None
    model: str = "cnn"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0
    trigger_size: int = 100
    triggers_per_batch: int | None = None  # None: the paper's 2, or more on small data (see owner.py)
    train_limit: int | None = None  # use only the first N training samples (CPU-scale runs)
    device: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExperimentRecord:
    """The JSON an experiment writes: its name, setting, machine, rows of results and timings."""

    experiment: str
    setting: ExperimentSetting
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)  # warnings of the attacks and spoofs it ran (see notes.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "modeldeed.experiment",
            "version": 1,
            "experiment": self.experiment,
            "setting": self.setting.to_json(),
            "machine": machine_description(),
            "seconds": round(time.time() - self.started, 2),
            "results": self.results,
            "notes": self.notes,
        }

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / f"{self.experiment}.json"
        write_json_atomic(path, self.to_json())
        return path


def machine_description() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "modeldeed": __version__,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
