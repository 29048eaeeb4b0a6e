"""modeldeed: prove who owns a neural network, and test how far such a proof can be trusted.

The names below are imported on first use (PEP 562), so that `import modeldeed.registry` (a log server, a
client that only signs and verifies) does not load PyTorch: `from modeldeed import train` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "Dataset": ".data",
    "DataSplits": ".data",
    "load_dataset": ".data",
    "DataError": ".errors",
    "FormatError": ".errors",
    "ModeldeedError": ".errors",
    "ModelInfo": ".models",
    "ModelSpec": ".models",
    "build_model": ".models",
    "load_model": ".models",
    "save_model": ".models",
    "spec_for_data": ".models",
    "Batch": ".training",
    "Hook": ".training",
    "TrainConfig": ".training",
    "TrainState": ".training",
    "accuracy": ".training",
    "predict": ".training",
    "sgd_step": ".training",
    "train": ".training",
}

__all__ = [
    "Batch",
    "DataError",
    "DataSplits",
    "Dataset",
    "FormatError",
    "Hook",
    "ModelInfo",
    "ModelSpec",
    "ModeldeedError",
    "TrainConfig",
    "TrainState",
    "__version__",
    "accuracy",
    "build_model",
    "load_dataset",
    "load_model",
    "predict",
    "save_model",
    "sgd_step",
    "spec_for_data",
    "train",
]

if TYPE_CHECKING:
    from .data import Dataset, DataSplits, load_dataset
    from .errors import DataError, FormatError, ModeldeedError
    from .models import ModelInfo, ModelSpec, build_model, load_model, save_model, spec_for_data
    from .training import Batch, Hook, TrainConfig, TrainState, accuracy, predict, sgd_step, train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modeldeed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
