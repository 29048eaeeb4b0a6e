"""Input preprocessing at query time: the thief serves the stolen model behind quantization, blur or noise.

The weights do not change. The attacked model is a wrapper that transforms every input before the
stolen model sees it, so the owner's trigger images reach the model only in transformed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from .base import Attack, AttackContext, Outcome


def quantize_inputs(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round pixel values in [0, 1] to 2**bits levels."""
    levels = 2**bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, kernel radius ceil(3 sigma), reflected borders where they fit."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    mode = "reflect" if radius < min(x.shape[2], x.shape[3]) else "replicate"
    out = F.pad(x, (radius, radius, radius, radius), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class PreprocessedModel(nn.Module):
    """`model` behind input transforms: quantize to `bits`, blur with `blur_sigma`, add noise of `noise_std`.

    The noise is drawn from `seed` at every query, so the same batch always gets the same noise
    (evaluations are reproducible); everything is clipped to [0, 1] as a real image pipeline would.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        bits: int | None = None,
        blur_sigma: float = 0.0,
        noise_std: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.bits = bits
        self.blur_sigma = blur_sigma
        self.noise_std = noise_std
        self.seed = seed

    @property
    def is_identity(self) -> bool:
        return self.bits is None and self.blur_sigma == 0 and self.noise_std == 0

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_identity:
            return x
        if self.blur_sigma > 0:
            x = gaussian_blur(x, self.blur_sigma)
        if self.noise_std > 0:
            generator = torch.Generator().manual_seed(self.seed)
            x = x + self.noise_std * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x.clamp(0, 1)
        if self.bits is not None:
            x = quantize_inputs(x, self.bits)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform(x))

    def describe(self) -> dict[str, Any]:
        return {"bits": self.bits, "blur_sigma": self.blur_sigma, "noise_std": self.noise_std, "seed": self.seed}


@dataclass(frozen=True, kw_only=True)
class InputPreprocessing(Attack):
    """Input preprocessing at query time: quantize, blur and/or add noise to every input before the model.

    Paper: input transformations against backdoors and adversarial examples (Guo et al., ICLR 2018; Xu et
    al., "Feature Squeezing", NDSS 2018); as a watermark removal attack in Lukas et al. (SoK, IEEE S&P 2022,
    "input quantization", "input smoothing", "input noising").

    Threat model: the thief serves the stolen model and controls its input pipeline; no training, no data.

    Arguments:
        bits (int | None): quantize pixels to 2**bits levels (1..16); None leaves them. Default: None.
        blur_sigma (float): Gaussian blur standard deviation in pixels; 0 disables. Default: 0.0.
        noise_std (float): Gaussian pixel noise standard deviation; 0 disables. Default: 0.0.
        data_fraction, seed, device, progress: see Attack (the data is not used; `seed` draws the noise).
        With every transform disabled the wrapper passes inputs through untouched.

    Returns: (PreprocessedModel wrapping the unchanged model, AttackResult).

    Example:
        >>> served, result = InputPreprocessing(blur_sigma=1.0)(model, splits.train, test=splits.test, verifier=v)
    """

    name: ClassVar[str] = "preprocess"
    bits: int | None = None
    blur_sigma: float = 0.0
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bits is not None and not 1 <= self.bits <= 16:
            raise ModeldeedError(f"preprocess: bits must lie in 1..16 (or be None), got {self.bits}")
        if not self.blur_sigma >= 0 or not self.noise_std >= 0:
            raise ModeldeedError(
                f"preprocess: blur_sigma and noise_std must be >= 0, got {self.blur_sigma}, {self.noise_std}"
            )

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        wrapped = PreprocessedModel(
            model, bits=self.bits, blur_sigma=self.blur_sigma, noise_std=self.noise_std, seed=self.seed
        )
        return Outcome(wrapped, {"transforms": wrapped.describe(), "identity": wrapped.is_identity})
