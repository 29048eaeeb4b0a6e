"""Weight perturbation attacks that need no data: quantization (bits) and Gaussian weight noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from .base import Attack, AttackContext, Outcome

FULL_PRECISION_BITS = 32


@torch.no_grad()
def quantize_tensor(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform quantization to 2**(bits-1)-1 levels each side of zero, one scale per tensor."""
    levels = 2 ** (bits - 1) - 1
    scale = t.abs().max() / levels
    if scale == 0:
        return t.clone()
    return torch.round(t / scale).clamp_(-levels, levels) * scale


@dataclass(frozen=True, kw_only=True)
class WeightQuantization(Attack):
    """Weight quantization: round every parameter tensor to `bits`-bit symmetric uniform levels.

    Paper: as a watermark removal attack in Lukas et al., "SoK: How Robust is Image Classification Deep
    Neural Network Watermarking?", IEEE S&P 2022 ("weight quantization"); cf. Jacob et al., CVPR 2018.

    Threat model: white-box weights, no data (a thief compressing a stolen model).

    Arguments:
        bits (int): bits per weight, 2..32. 32 or more is float32 itself: nothing changes. Default: 8.
        data_fraction, seed, device, progress: see Attack (the data is not used).

    Returns: (quantized model, AttackResult); details["distinct_values"] is the largest number of distinct
    values in one tensor afterwards.

    Example:
        >>> attacked, result = WeightQuantization(bits=4)(model, splits.train, test=splits.test, verifier=v)
    """

    name: ClassVar[str] = "quantize"
    bits: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bits < 2:
            raise ModeldeedError(f"quantize: bits must be at least 2, got {self.bits}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        if self.bits >= FULL_PRECISION_BITS:
            return Outcome(model, {"quantized": False})
        distinct = 0
        with torch.no_grad():
            for p in model.parameters():
                if p.is_floating_point():
                    p.copy_(quantize_tensor(p, self.bits))
                    distinct = max(distinct, int(torch.unique(p).numel()))
        return Outcome(model, {"quantized": True, "distinct_values": distinct})


@dataclass(frozen=True, kw_only=True)
class GaussianNoise(Attack):
    """Gaussian weight noise: add N(0, sigma^2) to every parameter, sigma relative to each tensor's spread.

    Paper: as a watermark removal attack in Lukas et al. (SoK, IEEE S&P 2022, "weight shifting / noise");
    Adi et al. (2018) argue a thief cannot add much noise without hurting accuracy.

    Threat model: white-box weights, no data.

    Arguments:
        std (float): noise standard deviation, >= 0. With `relative` it is a multiple of each tensor's own
            standard deviation (so one number suits every layer). 0 changes nothing. Default: 0.1.
        relative (bool): scale by each tensor's standard deviation (True) or use `std` as is. Default: True.
        data_fraction, seed, device, progress: see Attack (the data is not used; `seed` draws the noise).

    Returns: (noisy model, AttackResult); details["relative_l2"] is ||noise|| / ||weights|| over all parameters.

    Example:
        >>> attacked, result = GaussianNoise(std=0.5)(model, splits.train, test=splits.test, verifier=v)
    """

    name: ClassVar[str] = "noise"
    std: float = 0.1
    relative: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.std >= 0:
            raise ModeldeedError(f"noise: std must be >= 0, got {self.std}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        if self.std == 0:
            return Outcome(model, {"relative_l2": 0.0})
        generator = torch.Generator().manual_seed(self.seed)
        noise_sq = weight_sq = 0.0
        with torch.no_grad():
            for p in model.parameters():
                if not p.is_floating_point():
                    continue
                scale = self.std * (float(p.std()) if self.relative and p.numel() > 1 else 1.0)
                noise = torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale
                weight_sq += float(p.pow(2).sum())
                noise_sq += float(noise.pow(2).sum())
                p.add_(noise.to(p.device))
        return Outcome(model, {"relative_l2": (noise_sq / weight_sq) ** 0.5 if weight_sq else 0.0})
