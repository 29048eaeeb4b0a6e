"""The public input every verifier derives, and the witness only the owner can build.

Both sides derive the same statement from what they hold: the verification key (key id, hidden indices,
Poseidon commitments, ε) and the model (its quantized integers and their digest). The hidden triggers are
split into chunks of `slots` consecutive hidden indices, one proof each; chunk k proves "at least t_k of my
triggers are classified as committed", and the verifier requires Σ t_k ≥ ⌈(1-ε)·h⌉.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModeldeedError
from ..watermark import VerificationKey
from ..watermark.security import acceptance_threshold
from .circuit import CircuitSpec
from .encoding import decimal, digest_halves, trigger_bits, zk_nonce
from .keys import require_zk_key
from .quantize import INPUT_LEVEL, QuantizedMLP, strict_argmax


@dataclass(frozen=True)
class Statement:
    """What a proof is about: this key's hidden half, this quantized model, this circuit."""

    spec: CircuitSpec
    key_id: str
    model_digest: str
    hidden: tuple[int, ...]  # trigger indices with challenge bit 0
    commitments: tuple[int, ...]  # their Poseidon commitments
    weights: tuple[int, ...]  # the model's integers, in public-input order
    epsilon: float

    @property
    def required(self) -> int:
        """⌈(1-ε)·h⌉: how many hidden triggers must be classified as committed."""
        return acceptance_threshold(len(self.hidden), self.epsilon)

    def chunks(self) -> list[tuple[int, ...]]:
        """Positions in `hidden`, `slots` at a time (the last chunk may be partly empty)."""
        s = self.spec.slots
        return [tuple(range(start, min(start + s, len(self.hidden)))) for start in range(0, len(self.hidden), s)]

    def public_input(self, chunk: int, threshold: int) -> list[str]:
        positions = self.chunks()[chunk]
        header = [*digest_halves(self.key_id), *digest_halves(self.model_digest), threshold, chunk]
        slots: list[int] = []
        for slot in range(self.spec.slots):
            if slot < len(positions):
                slots += [1, self.commitments[positions[slot]]]
            else:
                slots += [0, 0]
        values = decimal([*header, *self.weights, *slots])
        if len(values) != self.spec.public_size:
            raise AssertionError("public input size does not match the circuit layout")
        return values


def derive_statement(vk: VerificationKey, quantized: QuantizedMLP, slots: int) -> Statement:
    """The statement for `vk` and `quantized`, from nothing a prover could choose."""
    commitments = require_zk_key(vk)
    if quantized.dims[0] != int(np.prod(vk.input_shape)) or quantized.classes != len(vk.classes):
        raise ModeldeedError(
            f"the model takes {quantized.dims[0]} inputs and has {quantized.classes} classes; the key is for "
            f"{int(np.prod(vk.input_shape))} inputs and {len(vk.classes)} classes"
        )
    hidden = tuple(i for i, bit in enumerate(vk.challenge()) if bit == 0)
    return Statement(
        CircuitSpec(quantized.dims, slots),
        vk.key_id,
        quantized.digest(),
        hidden,
        tuple(int(commitments[i]) for i in hidden),
        tuple(quantized.public_integers()),
        vk.epsilon,
    )


@dataclass(frozen=True)
class Witness:
    """The owner's secret inputs for one chunk, and which of its triggers the integer model gets right."""

    private: list[str]
    correct: int


def trigger_witness(
    statement: Statement,
    quantized: QuantizedMLP,
    chunk: int,
    images: torch.Tensor,
    labels: list[int],
    image_nonces: list[bytes],
) -> Witness:
    """Pixel bits, nonce, label, one-hot label, the integer forward pass and the counted flag, per slot.

    `images`, `labels` and `image_nonces` are the hidden triggers in the order of `statement.hidden`. A
    trigger is counted iff the integer model's logit for its label is strictly the largest; empty slots hold
    an all-zero image with label 0, its honest forward pass, and are not counted.
    """
    spec = statement.spec
    positions = statement.chunks()[chunk]
    bits = np.zeros((spec.slots, spec.inputs), dtype=np.int64)
    for slot, position in enumerate(positions):
        bits[slot] = trigger_bits(images[position])
    hidden_pre, logits = quantized.forward(bits * INPUT_LEVEL)
    predictions = strict_argmax(logits)
    private: list[int] = []
    correct = 0
    for slot in range(spec.slots):
        active = slot < len(positions)
        label = labels[positions[slot]] if active else 0
        nonce = zk_nonce(image_nonces[positions[slot]]) if active else 0
        counted = int(active and predictions[slot] == label)
        correct += counted
        private += [int(b) for b in bits[slot]]
        private += [nonce, label]
        private += [int(k == label) for k in range(spec.classes)]
        for z in hidden_pre:
            row = [int(v) for v in z[slot]]
            private += [int(v >= 0) for v in row]
            private += [v if v >= 0 else -v - 1 for v in row]
        private += [int(v) for v in logits[slot]]
        private.append(counted)
    if len(private) != spec.private_size:
        raise AssertionError("private input size does not match the circuit layout")
    return Witness(decimal(private), correct)


def split_threshold(correct: list[int], total: int) -> list[int]:
    """Per-chunk thresholds t_k ≤ correct_k summing to `total`, filled from the first chunk on.

    Asking for more than the triggers allow puts the excess on the first chunk, whose proof then cannot exist.
    """
    thresholds, left = [], total
    for count in correct:
        t = min(count, left)
        thresholds.append(t)
        left -= t
    if left > 0 and thresholds:
        thresholds[0] += left
    return thresholds
