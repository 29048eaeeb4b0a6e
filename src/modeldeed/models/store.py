"""A saved model is a directory: `model.safetensors` (every tensor, buffers included) + `model.json`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from .._version import __version__
from ..errors import FormatError, ModeldeedError, file_error
from ..files import (
    parse_safetensors_bytes,
    read_json_object,
    read_regular_file,
    safetensors_bound,
    write_json_atomic,
    write_safetensors_atomic,
)
from ..schema import Document, Name, validate_document
from .arguments import MAX_CHANNELS, MAX_CLASSES, MAX_MODEL_BYTES, MAX_SIDE
from .registry import DATA_ARGUMENTS, ModelSpec, build_model, is_user_factory, measure_model

MODEL_FORMAT = "modeldeed.model"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
MAX_META_BYTES = 16 << 20


class ModelDocument(Document):
    """model.json: what rebuilds the architecture, and what the model's outputs and inputs mean."""

    format: Literal["modeldeed.model"]
    version: Literal[1]
    modeldeed_version: Annotated[str, Field(max_length=64)]
    architecture: Name  # a built-in name, or "package.module:factory" (imported only with trust)
    arguments: dict[str, Any]  # checked per architecture by models.arguments before anything is built
    classes: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(min_length=1, max_length=MAX_CLASSES)]
    input_shape: Annotated[
        list[Annotated[int, Field(ge=1, le=max(MAX_CHANNELS, MAX_SIDE))]], Field(min_length=3, max_length=3)
    ]
    extra: dict[str, Any] | None = None  # free-form notes (training config, dataset, proof id); never executed


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
    """model.json through the bounded reader, validated as a `ModelDocument` (no file outside `directory`)."""
    if not Path(directory).is_dir():
        problem = "is a file, not a model directory" if Path(directory).exists() else "model directory not found"
        raise file_error(FormatError, directory, problem)
    path = Path(directory) / META_FILE
    return model_info_from_json(read_json_object(path, within=directory, max_bytes=MAX_META_BYTES), path)


def model_info_from_json(obj: Any, source: str | Path) -> ModelInfo:
    """Validate a parsed model.json (see `ModelDocument`): types, ranges, and agreement of a built-in
    architecture's data arguments with `input_shape` and `classes`."""
    doc = validate_document(ModelDocument, obj, source)
    shape = (doc.input_shape[0], doc.input_shape[1], doc.input_shape[2])
    if not is_user_factory(doc.architecture):
        declared = {"in_channels": shape[0], "num_classes": len(doc.classes), "input_size": [shape[1], shape[2]]}
        for name in DATA_ARGUMENTS:
            if name in doc.arguments and doc.arguments[name] != declared[name]:
                raise file_error(
                    FormatError,
                    source,
                    f"field 'arguments.{name}' is {str(doc.arguments[name])[:40]}, but input_shape and classes "
                    f"say {declared[name]}",
                )
    return ModelInfo(ModelSpec(doc.architecture, dict(doc.arguments)), tuple(doc.classes), shape, doc.extra)


def load_model(directory: str | Path, *, trust_code: bool = False, device: str = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild the architecture from model.json and load the exact tensors; every mismatch names the file.

    The architecture is checked and sized before it is built (`build_model`), and the weights file is
    refused by its size unless it can hold exactly that architecture's tensors.
    """
    info = read_model_info(directory)
    meta_path, weights_path = Path(directory) / META_FILE, Path(directory) / WEIGHTS_FILE
    try:
        size = measure_model(info.spec, trust_code=trust_code)
    except ModeldeedError as exc:
        raise file_error(FormatError, meta_path, str(exc)) from None
    # The weights are read before the model is built: what is allocated is bounded by the file the user
    # actually has, never by what model.json claims.
    bound = safetensors_bound(size.nbytes, size.tensors) if size else MAX_MODEL_BYTES
    data = read_regular_file(weights_path, max_bytes=bound, within=directory)
    if size and len(data) < size.nbytes:
        raise file_error(
            FormatError,
            weights_path,
            f"is {len(data)} bytes, too small for the {size.nbytes} bytes of tensors that {META_FILE} describes",
        )
    tensors = parse_safetensors_bytes(data, weights_path)
    del data
    try:
        model = build_model(info.spec, trust_code=trust_code)
    except ModeldeedError as exc:
        raise file_error(FormatError, meta_path, str(exc)) from None
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


def load_weights_file(model: nn.Module, spec: ModelSpec, path: str | Path, *, trust_code: bool = False) -> None:
    """Load a local safetensors file (`--init-weights`) into `model`, built from `spec`: the file is refused by
    its size unless it can hold exactly the architecture's tensors, then every name, shape and dtype must be the
    architecture's (`load_state_exactly`). Nothing is downloaded; nothing is unpickled."""
    path = Path(path)
    size = measure_model(spec, trust_code=trust_code)
    bound = safetensors_bound(size.nbytes, size.tensors) if size else MAX_MODEL_BYTES
    data = read_regular_file(path, max_bytes=bound, within=path.parent)
    if size and len(data) < size.nbytes:
        raise file_error(
            FormatError, path, f"is {len(data)} bytes, too small for the {size.nbytes} bytes of {spec.architecture}"
        )
    tensors = parse_safetensors_bytes(data, path)
    del data
    with torch.no_grad():
        load_state_exactly(model, tensors, path)
