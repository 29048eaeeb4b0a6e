"""The one place where architecture arguments are checked, before any model is built.

Arguments reach a model factory from files a stranger wrote (model.json, a proof's architecture), from the
command line (`--model-args`) and from code. Two checks stand between them and an allocation:

1. **Declared arguments.** Each built-in architecture declares its keyword arguments as a pydantic model:
   types are strict (a width of "32", 32.5 or true is refused), unknown names are refused, and every number
   lies in a range (`MAX_CHANNELS`, `MAX_SIDE`, `MAX_CLASSES`, `MAX_WIDTH`). User factories
   (`package.module:factory`, only with trust) declare nothing, so for them only check 2 applies.
2. **Size on the meta device.** The model is first built on PyTorch's meta device, which records shapes
   without allocating storage, and its parameters and buffers are counted. A model over `MAX_PARAMETERS`
   or `MAX_MODEL_BYTES` is refused before a single real tensor exists: a model.json asking for a 720 GB
   layer is refused in milliseconds with no memory to speak of.

Why these limits: the largest built-in, ResNet-18, has 11 M parameters (45 MB); 1 G parameters (4 GiB of
float32) is ~90 times that, more than a CPU verifier could replay in reasonable time, and still fits in the
memory of the machines modeldeed targets. Side and channel limits exist so that the arithmetic inside the
factories stays far from int64 overflow; the parameter limit is the one that binds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ..errors import ModeldeedError
from ..schema import describe_error

MAX_PARAMETERS = 1_000_000_000
MAX_MODEL_BYTES = 4 << 30  # parameters and buffers together, as stored in model.safetensors
MAX_CHANNELS = 1024
MAX_SIDE = 8192
MAX_CLASSES = 100_000
MAX_WIDTH = 4096

Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS)]
Classes = Annotated[int, Field(ge=1, le=MAX_CLASSES)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
CnnSide = Annotated[int, Field(ge=4, le=MAX_SIDE)]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CnnArguments(_Arguments):
    """`cnn` (SmallCNN): two conv blocks need at least 4×4 pixels."""

    in_channels: Channels = 1
    num_classes: Classes = 10
    input_size: Annotated[list[CnnSide], Field(min_length=2, max_length=2)] = [28, 28]
    width: Annotated[int, Field(ge=1, le=MAX_WIDTH)] = 32


class ResNetArguments(_Arguments):
    """`resnet18`, `resnet20`: the input size does not change the architecture, but it must be an image size."""

    in_channels: Channels = 3
    num_classes: Classes = 10
    input_size: Annotated[list[Side], Field(min_length=2, max_length=2)] = [32, 32]


class MlpArguments(_Arguments):
    """`mlp` (the architecture modeldeed.zk proves): up to 16 hidden layers of at most MAX_WIDTH units."""

    in_channels: Channels = 1
    num_classes: Classes = 10
    input_size: Annotated[list[Side], Field(min_length=2, max_length=2)] = [8, 8]
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]], Field(max_length=16)] = [16]


DECLARED: dict[str, type[_Arguments]] = {
    "cnn": CnnArguments,
    "resnet18": ResNetArguments,
    "resnet20": ResNetArguments,
    "mlp": MlpArguments,
}


def check_arguments(architecture: str, arguments: Any) -> dict[str, Any]:
    """The arguments of a built-in architecture, checked; a user factory's pass unchanged (only sized later)."""
    if not isinstance(arguments, dict):
        raise ModeldeedError(
            f"model {architecture!r}: arguments must be a JSON object, found {type(arguments).__name__}"
        )
    declared = DECLARED.get(architecture)
    if declared is None:
        return arguments
    try:
        declared.model_validate(arguments)
    except ValidationError as exc:
        raise ModeldeedError(f"model {architecture!r} arguments: {describe_error(exc)}") from None
    return arguments


class ModelSize(NamedTuple):
    """What a model's state dict (and so its weights file) holds."""

    elements: int
    nbytes: int
    tensors: int


def state_size(model: nn.Module) -> ModelSize:
    tensors = list(model.state_dict().values())
    return ModelSize(sum(t.numel() for t in tensors), sum(t.numel() * t.element_size() for t in tensors), len(tensors))


def size_on_meta(architecture: str, factory: Callable[..., nn.Module], arguments: dict[str, Any]) -> ModelSize | None:
    """The size of the model the factory would build, measured without allocating; None if unknown.

    A user factory that cannot run on the meta device (it loads files, calls data-dependent code) yields
    None; it is trusted code, so the real build then goes ahead unsized.
    """
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            probe = factory(**arguments)
    except (TypeError, ValueError) as exc:
        raise ModeldeedError(
            f"cannot build model {architecture!r} with arguments {_shown(arguments)} ({exc})"
        ) from None
    except (RuntimeError, NotImplementedError, OverflowError, MemoryError):
        if architecture in DECLARED:
            raise ModeldeedError(f"cannot build model {architecture!r} with arguments {_shown(arguments)}") from None
        return None
    if not isinstance(probe, nn.Module):
        return None
    return state_size(probe)


def check_size(architecture: str, arguments: dict[str, Any], size: ModelSize | None, max_bytes: int) -> None:
    if size is None:
        return
    elements, nbytes, _ = size
    if elements > MAX_PARAMETERS or nbytes > max_bytes:
        raise ModeldeedError(
            f"model {architecture!r} with arguments {_shown(arguments)} has {elements:,} parameters and buffers "
            f"({nbytes:,} bytes), more than the {MAX_PARAMETERS:,} parameters / {max_bytes:,} bytes allowed"
        )


def _shown(arguments: dict[str, Any]) -> str:
    text = repr(arguments)
    return text if len(text) <= 120 else text[:117] + "..."
