"""Shared pieces of the zero-knowledge tests: the toolchain gate, a tiny MLP, and honest witnesses to tamper with."""

from __future__ import annotations

import os

import pytest
import torch

from modeldeed.models.mlp import MLP
from modeldeed.zk.circuit import CircuitSpec
from modeldeed.zk.node import toolchain_problem
from modeldeed.zk.quantize import INPUT_LEVEL, QuantizedMLP, quantize_mlp, strict_argmax
from modeldeed.zk.statement import Statement


def require_toolchain() -> None:
    """Skip without Node.js and o1js, except in CI, where the zero-knowledge tests must run."""
    problem = toolchain_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the zero-knowledge tests, but {problem}")
    pytest.skip(f"zero-knowledge tests need the o1js toolchain: {problem}")


def tiny_mlp(seed: int = 0, hidden: tuple[int, ...] = (16,)) -> MLP:
    torch.manual_seed(seed)
    return MLP(1, 10, (8, 8), hidden)


def binary_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 1, 8, 8, generator=generator) > 0.5).to(torch.float32)


def labelled_triggers(quantized: QuantizedMLP, images: torch.Tensor, wrong: int) -> list[int]:
    """Labels that the integer model gets right, except for the last `wrong` triggers (which get another class)."""
    flat = images.flatten(1).to(torch.int64).numpy() * INPUT_LEVEL
    predictions = strict_argmax(quantized.forward(flat)[1])
    labels = [int(p) if p >= 0 else 0 for p in predictions]
    for i in range(len(labels) - wrong, len(labels)):
        labels[i] = (labels[i] + 1) % quantized.classes
    return labels


def statement_for(
    quantized: QuantizedMLP, commitments: list[str], slots: int, *, key_id: str = "ab" * 32, epsilon: float = 0.25
) -> Statement:
    return Statement(
        CircuitSpec(quantized.dims, slots),
        key_id,
        quantized.digest(),
        tuple(range(len(commitments))),
        tuple(int(c) for c in commitments),
        quantized,
        epsilon,
    )


def nonces(count: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(count)]


def quantized_tiny(seed: int = 0) -> tuple[MLP, QuantizedMLP]:
    model = tiny_mlp(seed)
    return model, quantize_mlp(model)
