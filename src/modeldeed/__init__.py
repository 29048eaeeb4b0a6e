"""modeldeed: prove who owns a neural network, and test how far such a proof can be trusted."""

from ._version import __version__
from .data import Dataset, DataSplits, load_dataset
from .errors import DataError, FormatError, ModeldeedError
from .models import ModelInfo, ModelSpec, build_model, load_model, save_model, spec_for_data
from .training import Batch, Hook, TrainConfig, TrainState, accuracy, predict, sgd_step, train

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
