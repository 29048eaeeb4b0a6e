"""modeldeed: prove who owns a neural network, and test how far such a proof can be trusted."""

__version__ = "0.1.0"

from .data import Dataset, DataSplits, load_dataset  # noqa: E402
from .errors import DataError, FormatError, ModeldeedError  # noqa: E402
from .models import ModelInfo, ModelSpec, build_model, load_model, save_model, spec_for_data  # noqa: E402
from .training import Batch, Hook, TrainConfig, TrainState, accuracy, predict, sgd_step, train  # noqa: E402

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
