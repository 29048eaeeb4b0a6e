"""The last fully connected layer: what FTLL/RTLL retrain and what transfer learning replaces."""

from __future__ import annotations

from torch import nn


def last_linear_name(model: nn.Module) -> str:
    """Dotted name of the last nn.Linear in registration order (the classifier head)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to treat as its head")
    return names[-1]


def last_linear(model: nn.Module) -> nn.Linear:
    layer = model.get_submodule(last_linear_name(model))
    assert isinstance(layer, nn.Linear)
    return layer


def replace_last_linear(model: nn.Module, layer: nn.Linear) -> nn.Linear:
    """Put `layer` in place of the head and return the old one."""
    name = last_linear_name(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, layer)
    return old


def reset_last_linear(model: nn.Module) -> None:
    """Re-initialise the head with PyTorch's default initialisation (the RT in RTLL/RTAL)."""
    last_linear(model).reset_parameters()
