"""The integer MLP the circuit evaluates, derived from a float model by a rule anyone can re-run.

Why integers without requantization between layers: a field has no floats, and dividing inside a circuit
costs range checks. So each weight matrix is scaled to integers of at most `WEIGHT_BITS` bits (one scale per
layer, round half to even), the input is x·255 rounded, biases are scaled by the product of the scales before
them, and the integers simply grow from layer to layer. Since every scale is positive, the argmax of the integer
logits approximates the float model's. The verifier re-derives all of it from MODEL (never from the prover),
and refuses a model whose values could reach 2^62: the circuit decides signs with 64-bit range checks.

Quantization can change which inputs a model labels how, so the prover reports (and bounds) how often the
integer model agrees with the float one, on the hidden triggers and on the test set.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..crypto import encode_tensor, tagged_digest
from ..errors import ModeldeedError

WEIGHT_BITS = 16
INPUT_LEVEL = 255
MAGNITUDE_BITS = 62  # every integer the circuit meets stays below 2^62 in absolute value
DIGEST_TAG = b"modeldeed/zk-quantized-mlp/v1"
MIN_TEST_AGREEMENT = 0.99  # the integer model must label at least this share of the test set like the float one
MIN_TRIGGER_AGREEMENT = 0.95  # ... and of the hidden triggers


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """Integer weights W_l (out × in) and biases B_l; z_l = W_l·ReLU(z_{l-1}) + B_l, z_0 = round(255·x)."""

    dims: tuple[int, ...]
    weights: tuple[np.ndarray, ...]  # int64
    biases: tuple[np.ndarray, ...]  # int64
    scales: tuple[float, ...]  # float weight ≈ integer weight × scale
    weight_bits: int = WEIGHT_BITS

    @property
    def classes(self) -> int:
        return self.dims[-1]

    def digest(self) -> str:
        """SHA-256 over the architecture and every integer: what the proof is bound to besides the weights."""
        parts = [encode_tensor("<i8", (len(self.dims),), np.asarray(self.dims, "<i8").tobytes())]
        for w, b in zip(self.weights, self.biases):
            parts.append(encode_tensor("<i8", w.shape, w.astype("<i8").tobytes()))
            parts.append(encode_tensor("<i8", b.shape, b.astype("<i8").tobytes()))
        header = f"weight_bits={self.weight_bits};input_level={INPUT_LEVEL}".encode()
        return tagged_digest(DIGEST_TAG, hashlib.sha256(header).digest() + b"".join(parts)).hex()

    def public_integers(self) -> list[int]:
        """W_1 row by row, B_1, W_2, B_2, ...: the order of the circuit's public input."""
        out: list[int] = []
        for w, b in zip(self.weights, self.biases):
            out.extend(int(v) for v in w.reshape(-1))
            out.extend(int(v) for v in b)
        return out

    def forward(self, inputs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Pre-activations of every hidden layer and the logits, for integer inputs (N × dims[0])."""
        a = np.asarray(inputs, dtype=np.int64)
        hidden = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w.T + b
            if layer == len(self.weights) - 1:
                return hidden, z
            hidden.append(z)
            a = np.maximum(z, 0)
        raise AssertionError("unreachable")

    def classify(self, images: torch.Tensor) -> np.ndarray:
        """The class whose integer logit is strictly the largest, or -1 on a tie (the circuit's rule)."""
        _, logits = self.forward(quantize_inputs(images))
        return strict_argmax(logits)


def quantize_inputs(images: torch.Tensor) -> np.ndarray:
    flat = images.detach().to("cpu", torch.float64).flatten(1).clamp(0, 1).numpy()
    return np.rint(flat * INPUT_LEVEL).astype(np.int64)


def strict_argmax(logits: np.ndarray) -> np.ndarray:
    best = logits.argmax(1)
    top = logits.max(1)
    ties = (logits == top[:, None]).sum(1) > 1
    return np.where(ties, -1, best)


def mlp_layers(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a modeldeed `mlp` (Flatten, (Linear, ReLU)*, Linear), or a ModeldeedError."""
    from ..models.mlp import MLP

    if type(model) is not MLP:
        raise ModeldeedError(
            f"zero-knowledge verification supports the `mlp` architecture only; this model is a {type(model).__name__}"
        )
    return model.linear_layers()


def quantize_mlp(model: nn.Module, *, weight_bits: int = WEIGHT_BITS) -> QuantizedMLP:
    """The integer MLP of `model`, deterministic in its float32 weights (float64 arithmetic, round half even)."""
    if not 2 <= weight_bits <= 24:
        raise ModeldeedError(f"weight bits must be between 2 and 24, got {weight_bits}")
    layers = mlp_layers(model)
    top = 2 ** (weight_bits - 1) - 1
    dims = [layers[0].in_features] + [layer.out_features for layer in layers]
    weights, biases, scales = [], [], []
    cumulative = 1.0 / INPUT_LEVEL  # the float value of one unit of the current layer's input
    for layer in layers:
        w = layer.weight.detach().to("cpu", torch.float64).numpy()
        b = (
            layer.bias.detach().to("cpu", torch.float64).numpy()
            if layer.bias is not None
            else np.zeros(w.shape[0], np.float64)
        )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModeldeedError("the model has weights that are not finite numbers")
        peak = float(np.abs(w).max()) if w.size else 0.0
        scale = peak / top if peak > 0 else 1.0
        cumulative *= scale
        bias = np.rint(b / cumulative)
        if np.abs(bias).max(initial=0) >= 2.0**MAGNITUDE_BITS:
            raise ModeldeedError("a bias is too large against the weights to quantize (beyond 2^62 units)")
        weights.append(np.rint(w / scale).astype(np.int64))
        biases.append(bias.astype(np.int64))
        scales.append(scale)
    quantized = QuantizedMLP(tuple(dims), tuple(weights), tuple(biases), tuple(scales), weight_bits)
    check_magnitudes(quantized)
    return quantized


def magnitude_bounds(model: QuantizedMLP) -> list[int]:
    """For each layer, the largest |z| any input in [0, 255] can produce (exact integers, no overflow)."""
    bound = INPUT_LEVEL
    bounds = []
    for w, b in zip(model.weights, model.biases):
        rows = [sum(abs(int(v)) for v in row) * bound + abs(int(c)) for row, c in zip(w.tolist(), b.tolist())]
        bound = max(rows, default=0)
        bounds.append(bound)
    return bounds


def check_magnitudes(model: QuantizedMLP) -> None:
    bounds = magnitude_bounds(model)
    if bounds and max(bounds) >= 2**MAGNITUDE_BITS:
        worst = max(bounds)
        raise ModeldeedError(
            f"the quantized model's values could reach 2^{math.log2(worst):.1f}; the circuit decides signs with "
            f"64-bit range checks and supports up to 2^{MAGNITUDE_BITS} (fewer layers or fewer weight bits)"
        )


@dataclass(frozen=True)
class Agreement:
    """How often the integer model labels inputs as the float model does."""

    agreeing: int
    total: int

    @property
    def rate(self) -> float:
        return self.agreeing / self.total if self.total else 1.0

    def to_json(self) -> dict[str, float | int]:
        return {"agreeing": self.agreeing, "total": self.total, "rate": self.rate}


@torch.no_grad()
def agreement(model: nn.Module, quantized: QuantizedMLP, images: torch.Tensor, batch: int = 2048) -> Agreement:
    """Float argmax against the integer model's strict argmax (a tie counts as a disagreement)."""
    was_training = model.training
    model.eval()
    agreeing = 0
    try:
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            floats = model(chunk.to(next(model.parameters()).device)).argmax(1).cpu().numpy()
            agreeing += int((floats == quantized.classify(chunk)).sum())
    finally:
        model.train(was_training)
    return Agreement(agreeing, len(images))


def check_agreement(name: str, result: Agreement, minimum: float) -> None:
    """Refuse (bad input) when quantization changes too many labels: the proof would speak of another model."""
    if result.total and result.rate < minimum:
        raise ModeldeedError(
            f"the quantized model labels only {result.agreeing} of {result.total} {name} like the float model "
            f"({100 * result.rate:.1f} %, at least {100 * minimum:.0f} % needed): a proof about it would not be "
            "about this model"
        )
