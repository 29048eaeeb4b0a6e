"""Distances between weight vectors, as the PoL verifier compares a replay with the stored checkpoint.

All four are computed in float64: in float32 a cosine distance of two nearly equal 10^5-entry vectors
is pure rounding noise (it even comes out negative). The cosine distance is 1 - <a,b>/(|a||b|) (the
reference code divides by |a||a|), evaluated in the cancellation-free form
(|a-b|^2 - (|a|-|b|)^2) / (2|a||b|), which equals it exactly in real arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from ..errors import ModeldeedError

METRICS: tuple[str, ...] = ("l1", "l2", "linf", "cos")


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in METRICS]
    if unknown or not chosen:
        raise ModeldeedError(
            f"unknown distance metric(s) {unknown or '(none given)'}; choose from {', '.join(METRICS)}"
        )
    return chosen


def flatten(tensors: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The named tensors concatenated in the given order, as one float64 CPU vector."""
    if not names:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([tensors[name].detach().to("cpu", torch.float64).reshape(-1) for name in names])


def distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> float:
    return distances(a, b, (metric,))[metric]


def distances(a: torch.Tensor, b: torch.Tensor, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """d(a, b) for each metric; a and b are flat vectors of equal length (promoted to float64)."""
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"distances need two flat vectors of equal length, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    diff = a - b
    out: dict[str, float] = {}
    for metric in metrics:
        if metric == "l1":
            out[metric] = float(diff.abs().sum())
        elif metric == "l2":
            out[metric] = float(diff.norm())
        elif metric == "linf":
            out[metric] = float(diff.abs().max()) if diff.numel() else 0.0
        elif metric == "cos":
            out[metric] = cosine_distance(a, b, diff)
        else:
            raise ModeldeedError(f"unknown distance metric {metric!r}; choose from {', '.join(METRICS)}")
    return out


def cosine_distance(a: torch.Tensor, b: torch.Tensor, diff: torch.Tensor | None = None) -> float:
    """1 - <a,b>/(|a||b|); 1.0 when either vector is zero (no direction to agree with)."""
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 0.0 if na == nb else 1.0
    d = float((a - b).norm()) if diff is None else float(diff.norm())
    return max(0.0, (d * d - (na - nb) ** 2) / (2.0 * na * nb))
