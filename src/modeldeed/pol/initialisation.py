"""Is W_0 a draw from the declared initialisation? A Kolmogorov-Smirnov test per conv/linear layer.

A prover who starts from weights that were not freshly drawn (a pretrained model, the final weights,
a hand-placed starting point) gets most of the work for free; the KS test catches weights whose
per-layer distribution differs from the declared one. Schemes:

- `pytorch-default`: PyTorch's reset_parameters for conv and linear layers: weights
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform with a = sqrt(5)), biases the same.
- `kaiming-normal`: weights N(0, sqrt(2/fan_in)) (He et al.); biases are not tested.

BatchNorm and other layers are not tested (their initial values are constants). With many layers, a
per-layer threshold rejects honest proofs by chance (8 layers at p < 0.01: about 8 %), so by default the
threshold is divided by the number of tests (Bonferroni), which keeps the false rejection rate at alpha.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

CONV_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class LayerTest:
    """One KS test: the tensor, the distribution it was tested against, and the outcome."""

    name: str
    distribution: str
    samples: int
    statistic: float
    p_value: float

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "samples": self.samples,
            "statistic": self.statistic,
            "p_value": self.p_value,
        }


def fan_in(weight: torch.Tensor) -> int:
    """As torch.nn.init computes it: input feature maps times the receptive field size."""
    return int(weight.shape[1]) * math.prod(int(s) for s in weight.shape[2:]) if weight.dim() >= 2 else 0


def declared_distributions(model: nn.Module, scheme: str) -> list[tuple[str, str, tuple[float, float]]]:
    """(tensor name, scipy distribution name, (loc, scale)) for every tensor the scheme says how to draw."""
    out: list[tuple[str, str, tuple[float, float]]] = []
    for module_name, module in model.named_modules():
        if not isinstance(module, CONV_LINEAR):
            continue
        prefix = f"{module_name}." if module_name else ""
        fan = fan_in(module.weight)
        if fan == 0:
            continue
        if scheme == "pytorch-default":
            bound = 1.0 / math.sqrt(fan)
            out.append((prefix + "weight", "uniform", (-bound, 2 * bound)))
            if getattr(module, "bias", None) is not None:
                out.append((prefix + "bias", "uniform", (-bound, 2 * bound)))
        elif scheme == "kaiming-normal":
            out.append((prefix + "weight", "norm", (0.0, math.sqrt(2.0 / fan))))
    return out


def describe(distribution: str, args: tuple[float, float]) -> str:
    if distribution == "uniform":
        return f"U({args[0]:.4g}, {args[0] + args[1]:.4g})"
    return f"N({args[0]:.4g}, {args[1]:.4g})"


def ks_tests(model: nn.Module, tensors: Mapping[str, torch.Tensor], scheme: str) -> list[LayerTest]:
    """Test each declared tensor of W_0 (`tensors` by state-dict name) against its distribution."""
    from scipy import stats

    tests = []
    for name, distribution, args in declared_distributions(model, scheme):
        values = tensors[name].detach().to("cpu", torch.float64).reshape(-1).numpy()
        if values.size == 0:
            continue
        if not np.all(np.isfinite(values)):
            tests.append(LayerTest(name, describe(distribution, args), int(values.size), 1.0, 0.0))
            continue
        result = stats.kstest(values, distribution, args=args)
        tests.append(
            LayerTest(
                name, describe(distribution, args), int(values.size), float(result.statistic), float(result.pvalue)
            )
        )
    return tests


def failing_layers(tests: list[LayerTest], alpha: float, family_wise: bool) -> tuple[float, list[LayerTest]]:
    """The per-test threshold and the tests below it."""
    threshold = alpha / len(tests) if family_wise and tests else alpha
    return threshold, [t for t in tests if t.p_value < threshold]
