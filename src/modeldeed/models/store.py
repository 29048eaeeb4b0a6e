"""A saved model is a directory: `model.safetensors` (every tensor, buffers included) + `model.json`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import FormatError, file_error
from ..files import read_json_object, read_safetensors, safetensors_bound, write_json_atomic, write_safetensors_atomic
from ..validation import Fields
from .registry import ModelSpec, build_model

MODEL_FORMAT = "modeldeed.model"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@dataclass(frozen=True)
class ModelInfo:
    """Everything besides the weights that a reader needs to rebuild and use the model."""

    spec: ModelSpec
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    extra: dict[str, Any] | None = None  # e.g. the training config that produced it

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "version": 1,
            "modeldeed_version": __version__,
            **self.spec.to_json(),
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
        }
        if self.extra:
            doc["extra"] = self.extra
        return doc


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name; tied weights are cloned so safetensors accepts them."""
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def save_model(directory: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    """Write weights first, then the JSON: a directory with a model.json always has its weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(directory / WEIGHTS_FILE, state_tensors(model), {"format": MODEL_FORMAT})
    write_json_atomic(directory / META_FILE, info.to_json())
    return directory


def read_model_info(directory: str | Path) -> ModelInfo:
    path = Path(directory) / META_FILE
    if not Path(directory).is_dir():
        raise file_error(FormatError, directory, "model directory not found")
    fields = Fields(read_json_object(path), path)
    fields.expect_format(MODEL_FORMAT)
    arguments = fields.object("arguments").obj
    classes = tuple(fields.str_list("classes"))
    if not classes:
        raise fields.fail("classes", "must name at least one class")
    shape = fields.int_list("input_shape", length=3, minimum=1)
    extra = fields.object("extra").obj if fields.has("extra") else None
    return ModelInfo(ModelSpec(fields.str("architecture"), arguments), classes, (shape[0], shape[1], shape[2]), extra)


def load_model(directory: str | Path, *, trust_code: bool = False, device: str = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild the architecture from model.json and load the exact tensors; every mismatch names the file."""
    info = read_model_info(directory)
    model = build_model(info.spec, trust_code=trust_code)
    weights_path = Path(directory) / WEIGHTS_FILE
    expected = model.state_dict()
    size = sum(t.numel() * t.element_size() for t in expected.values())
    tensors = read_safetensors(weights_path, max_bytes=safetensors_bound(size, len(expected)), within=directory)
    load_state_exactly(model, tensors, weights_path)
    return model.to(device), info


def load_state_exactly(model: nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Copy tensors into the model; missing, unexpected or wrongly shaped/typed entries are errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise file_error(FormatError, source, "does not match the architecture: " + "; ".join(parts))
    for name, ref in expected.items():
        got = tensors[name]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise file_error(
                FormatError,
                source,
                f"tensor {name!r} is {got.dtype}{tuple(got.shape)}, "
                f"the architecture needs {ref.dtype}{tuple(ref.shape)}",
            )
    model.load_state_dict(tensors, strict=True)
