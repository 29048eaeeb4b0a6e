"""Models by name (`cnn`, `resnet18`, `resnet20`) or as "package.module:factory"; saved without pickle."""

from .arguments import MAX_MODEL_BYTES, MAX_PARAMETERS, ModelSize, check_arguments
from .digest import model_digest
from .heads import last_linear, last_linear_name, replace_last_linear, reset_last_linear
from .registry import (
    BUILTIN,
    ModelSpec,
    build_model,
    is_user_factory,
    measure_model,
    resolve_factory,
    spec_for_data,
)
from .store import ModelDocument, ModelInfo, load_model, load_state_exactly, read_model_info, save_model, state_tensors

MODEL_NAMES = tuple(BUILTIN)

__all__ = [
    "is_user_factory",
    "MAX_MODEL_BYTES",
    "MAX_PARAMETERS",
    "MODEL_NAMES",
    "ModelDocument",
    "ModelInfo",
    "ModelSize",
    "ModelSpec",
    "build_model",
    "check_arguments",
    "last_linear",
    "model_digest",
    "last_linear_name",
    "load_model",
    "load_state_exactly",
    "measure_model",
    "read_model_info",
    "replace_last_linear",
    "reset_last_linear",
    "resolve_factory",
    "save_model",
    "spec_for_data",
    "state_tensors",
]
