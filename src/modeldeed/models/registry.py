"""Architectures by name, timm models as "timm:NAME" (optional extra), and user models as "package.module:factory"
with JSON keyword arguments."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModeldeedError
from ..files import parse_json_bytes
from .arguments import MAX_MODEL_BYTES, ModelSize, check_arguments, check_size, size_on_meta
from .cnn import SmallCNN
from .mlp import MLP
from .resnet import resnet18, resnet20
from .timm_models import is_timm, timm_factory

BUILTIN: dict[str, Callable[..., nn.Module]] = {"cnn": SmallCNN, "resnet18": resnet18, "resnet20": resnet20, "mlp": MLP}
DATA_ARGUMENTS = ("in_channels", "num_classes", "input_size")


@dataclass(frozen=True)
class ModelSpec:
    """What builds a model: an architecture name (or "module:factory") and its keyword arguments."""

    architecture: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "arguments": self.arguments}


def is_user_factory(architecture: str) -> bool:
    """A "module:factory" of the user's (imported only with trust); built-ins and `timm:NAME` are not."""
    return architecture not in BUILTIN and not is_timm(architecture)


def resolve_factory(architecture: str, *, trust_code: bool) -> Callable[..., nn.Module]:
    """A built-in name, or "package.module:factory" (imported only when the caller trusts that code)."""
    if architecture in BUILTIN:
        return BUILTIN[architecture]
    if is_timm(architecture):  # a library's registry, not user code: no trust needed (see models.timm_models)
        return timm_factory(architecture)
    module_name, sep, attr = architecture.partition(":")
    if not sep or not module_name or not attr:
        raise ModeldeedError(
            f"unknown model {architecture!r}; use one of {', '.join(BUILTIN)} or 'package.module:factory'"
        )
    if not trust_code:
        raise ModeldeedError(
            f"model {architecture!r} is user code; importing it runs that code, so pass trust_code=True "
            "(CLI: --trust-model-code) only for code you trust"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModeldeedError(f"cannot import module {module_name!r} for model {architecture!r} ({exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModeldeedError(f"{module_name!r} has no callable {attr!r}")
    return factory


def spec_for_data(
    architecture: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    extra: dict[str, Any] | str | None = None,
    *,
    trust_code: bool = False,
) -> ModelSpec:
    """Fill in the data-derived arguments (channels, size, classes) the factory accepts, plus the user's JSON ones."""
    if isinstance(extra, str):
        extra = parse_json_bytes(extra.encode("utf-8", "surrogatepass"), "--model-args", max_bytes=1 << 20)
    if extra is not None and not isinstance(extra, dict):
        raise ModeldeedError(f"model arguments must be a JSON object, found {type(extra).__name__}")
    factory = resolve_factory(architecture, trust_code=trust_code)
    derived = {
        "in_channels": input_shape[0],
        "num_classes": num_classes,
        "input_size": [input_shape[1], input_shape[2]],
    }
    try:
        params = inspect.signature(factory).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        accepted = {k: v for k, v in derived.items() if takes_kwargs or k in params}
    except (TypeError, ValueError):
        accepted = {}
    overridden = sorted(set(accepted) & set(extra or {}))
    if overridden:
        raise ModeldeedError(
            f"model arguments {', '.join(overridden)} come from the data "
            f"({ {k: accepted[k] for k in overridden} }); do not set them in the model arguments"
        )
    return ModelSpec(architecture, {**accepted, **(extra or {})})


def measure_model(spec: ModelSpec, *, trust_code: bool = False, max_bytes: int = MAX_MODEL_BYTES) -> ModelSize | None:
    """Check a spec's arguments and size it on the meta device: what its state holds, or None when
    a trusted user factory cannot be sized. Refuses (ModeldeedError) anything over the limits; allocates nothing.
    """
    factory = resolve_factory(spec.architecture, trust_code=trust_code)
    arguments = check_arguments(spec.architecture, spec.arguments)
    size = size_on_meta(spec.architecture, factory, arguments)
    check_size(spec.architecture, arguments, size, max_bytes)
    return size


def build_model(
    spec: ModelSpec, *, seed: int | None = None, trust_code: bool = False, max_bytes: int = MAX_MODEL_BYTES
) -> nn.Module:
    """Instantiate a model; with `seed`, its initial weights are a pure function of the seed.

    Every model is built here, and only after `measure_model` checked its arguments and sized it on the meta
    device (see `models.arguments`): arguments from a file a stranger wrote cannot make it allocate more than
    `max_bytes`. Errors are ModeldeedErrors; callers that read the spec from a file add the file's name.
    """
    if seed is not None and not 0 <= seed < 2**64:
        raise ModeldeedError(f"seed must lie in [0, 2**64), got {seed}")
    measure_model(spec, trust_code=trust_code, max_bytes=max_bytes)
    factory = resolve_factory(spec.architecture, trust_code=trust_code)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model = factory(**spec.arguments)
        except (TypeError, ValueError) as exc:
            raise ModeldeedError(
                f"cannot build model {spec.architecture!r} with arguments {spec.arguments} ({exc})"
            ) from None
    if not isinstance(model, nn.Module):
        raise ModeldeedError(f"factory {spec.architecture!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
