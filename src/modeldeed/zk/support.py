"""Which models the circuit proves, and for the others how large a circuit would have to be.

Supported: modeldeed's `mlp` (Flatten, (Linear, ReLU)*, Linear) whose circuit fits o1js's 2^16 rows for at
least four triggers per proof; with Freivalds' check per layer a trigger costs about 2 rows per input pixel,
8 per hidden unit and 13 per class, and the weights cost 2 rows each once per proof (digits 64-16-10: about
420 rows per trigger, 64 triggers in 2^15 rows). Anything else is refused before any subprocess starts, with
the size a direct circuit (one row per multiply-add) would need, instead of running out of memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModeldeedError
from ..models.mlp import MLP
from .circuit import MAX_ROWS, choose_slots, mac_estimate_rows


@torch.no_grad()
def multiply_adds(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass through every Linear and Conv2d layer."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *[int(d) for d in input_shape], device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


def supported_problem(model: nn.Module, input_shape: Sequence[int], hidden: int) -> str | None:
    """None if `model` can be proven with `hidden` triggers; else the refusal, with the estimated circuit size."""
    if type(model) is MLP:
        layers = model.linear_layers()
        dims = (layers[0].in_features, *(layer.out_features for layer in layers))
        try:
            choose_slots(dims, hidden)
        except ModeldeedError as exc:
            return str(exc)
        return None
    parameters = sum(p.numel() for p in model.parameters())
    macs = multiply_adds(model, input_shape)
    rows = mac_estimate_rows(macs, parameters, max(hidden, 1))
    return (
        f"zero-knowledge verification supports the `mlp` architecture only (docs/zk.md), not "
        f"{type(model).__name__}: a circuit for it would need about {rows:,} rows ({macs:,} multiply-adds per "
        f"trigger × {hidden} hidden triggers + {parameters:,} weights), and o1js proves at most {MAX_ROWS:,} rows"
    )


def require_supported(model: nn.Module, input_shape: Sequence[int], hidden: int) -> None:
    problem = supported_problem(model, input_shape, hidden)
    if problem:
        raise ModeldeedError(problem)
