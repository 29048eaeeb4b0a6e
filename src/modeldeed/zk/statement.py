"""The public input every verifier derives, and the claims only the owner can make (js/circuit.mjs is the spec).

Both sides derive the same statement from what they hold: the verification key (key id, hidden indices,
Poseidon commitments, ε) and the model (its quantized integers and their digest). The hidden triggers are
split into chunks of `slots` consecutive hidden indices, one proof each; chunk k proves "at least t_k of my
triggers are classified as committed", and the verifier requires Σ t_k ≥ ⌈(1-ε)·h⌉.

The weights enter a proof only through Freivalds vectors: with the challenge seed c (a Poseidon hash of the
prover's salted claims, proven inside the circuit) and r_l = Poseidon(c, l), the verifier computes
v_l = Σ_j r_l^j W_l[j, :] and β_l = Σ_j r_l^j B_l[j] from MODEL's integers, modulo p.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ModeldeedError
from ..watermark import VerificationKey
from ..watermark.security import acceptance_threshold
from .circuit import CircuitSpec
from .encoding import FIELD_MODULUS, decimal, digest_halves, pack_bits, parse_field, trigger_bits, zk_nonce
from .keys import require_zk_key
from .quantize import INPUT_LEVEL, QuantizedMLP, strict_argmax

MAGNITUDES_PER_FIELD = 3  # 64-bit magnitudes per field element in the challenge transcript


@dataclass(frozen=True)
class Statement:
    """What a proof is about: this key's hidden half, this quantized model, this circuit."""

    spec: CircuitSpec
    key_id: str
    model_digest: str
    hidden: tuple[int, ...]  # trigger indices with challenge bit 0
    commitments: tuple[int, ...]  # their Poseidon commitments
    model: QuantizedMLP
    epsilon: float

    @property
    def required(self) -> int:
        """⌈(1-ε)·h⌉: how many hidden triggers must be classified as committed."""
        return acceptance_threshold(len(self.hidden), self.epsilon)

    def chunks(self) -> list[tuple[int, ...]]:
        """Positions in `hidden`, `slots` at a time (the last chunk may be partly empty)."""
        s = self.spec.slots
        return [tuple(range(start, min(start + s, len(self.hidden)))) for start in range(0, len(self.hidden), s)]

    def header(self, chunk: int, threshold: int) -> list[int]:
        return [*digest_halves(self.key_id), *digest_halves(self.model_digest), int(threshold), int(chunk)]

    def public_input(self, chunk: int, threshold: int, seed: int, rhos: Sequence[int]) -> list[str]:
        positions = self.chunks()[chunk]
        slots: list[int] = []
        for slot in range(self.spec.slots):
            slots += [1, self.commitments[positions[slot]]] if slot < len(positions) else [0, 0]
        values = decimal([*self.header(chunk, threshold), seed, *freivalds_vectors(self.model, rhos), *slots])
        if len(values) != self.spec.public_size:
            raise AssertionError("public input size does not match the circuit layout")
        return values


def freivalds_vectors(model: QuantizedMLP, rhos: Sequence[int]) -> list[int]:
    """Per layer: v_l = Σ_j r^j W_l[j, :] (one value per input) and β_l = Σ_j r^j B_l[j], modulo p."""
    if len(rhos) != len(model.weights):
        raise ModeldeedError(f"expected {len(model.weights)} layer challenges, got {len(rhos)}")
    out: list[int] = []
    for r, w, b in zip(rhos, model.weights, model.biases):
        powers = [pow(int(r), j, FIELD_MODULUS) for j in range(w.shape[0])]
        for i in range(w.shape[1]):
            out.append(sum(p * int(w[j, i]) for j, p in enumerate(powers)) % FIELD_MODULUS)
        out.append(sum(p * int(c) for p, c in zip(powers, b.tolist())) % FIELD_MODULUS)
    return out


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
        tuple(parse_field(commitments[i], f"the key's Poseidon commitment {i}") for i in hidden),
        quantized,
        vk.epsilon,
    )


@dataclass
class Claims:
    """The owner's secret inputs for one chunk: triggers, and the forward pass claimed for each slot."""

    bits: np.ndarray  # slots × inputs, 0/1
    nonces: list[int]
    labels: list[int]
    hidden: list[np.ndarray]  # per hidden layer: slots × width pre-activations
    logits: np.ndarray  # slots × classes
    counted: list[int]
    salt: int = field(default_factory=lambda: secrets.randbits(248))

    def private(self) -> list[str]:
        out: list[int] = [self.salt]
        classes = self.logits.shape[1]
        for s in range(len(self.counted)):
            out += [int(b) for b in self.bits[s]]
            out += [self.nonces[s], self.labels[s]]
            out += [int(k == self.labels[s]) for k in range(classes)]
            for z in self.hidden:
                row = [int(v) for v in z[s]]
                out += [int(v >= 0) for v in row]
                out += [v if v >= 0 else -v - 1 for v in row]
            out += [int(v) for v in self.logits[s]]
            out.append(self.counted[s])
        return decimal(out)

    def transcript(self, header: Sequence[int]) -> list[str]:
        """What the circuit hashes into the challenge seed, in its order (js/circuit.mjs)."""
        out: list[int] = [*header, self.salt]
        for s in range(len(self.counted)):
            out += pack_bits([int(b) for b in self.bits[s]])
            for z in self.hidden:
                row = [int(v) for v in z[s]]
                out += pack_bits([int(v >= 0) for v in row])
                magnitudes = [v if v >= 0 else -v - 1 for v in row]
                for i in range(0, len(magnitudes), MAGNITUDES_PER_FIELD):
                    out.append(sum(m << (64 * k) for k, m in enumerate(magnitudes[i : i + MAGNITUDES_PER_FIELD])))
            out += [int(v) for v in self.logits[s]]
        return decimal(out)

    @property
    def correct(self) -> int:
        return sum(self.counted)


def honest_claims(
    statement: Statement,
    chunk: int,
    images: torch.Tensor,
    labels: Sequence[int],
    image_nonces: Sequence[bytes],
) -> Claims:
    """The true forward pass of the integer model on this chunk's triggers, each counted iff classified as committed.

    `images`, `labels` and `image_nonces` are the hidden triggers in the order of `statement.hidden`. A trigger is
    counted iff the integer model's logit for its label is strictly the largest; empty slots hold an all-zero
    image with label 0 and its honest forward pass, and are not counted.
    """
    spec = statement.spec
    positions = statement.chunks()[chunk]
    bits = np.zeros((spec.slots, spec.inputs), dtype=np.int64)
    for slot, position in enumerate(positions):
        bits[slot] = trigger_bits(images[position])
    hidden, logits = statement.model.forward(bits * INPUT_LEVEL)
    predictions = strict_argmax(logits)
    slot_labels = [int(labels[p]) for p in positions] + [0] * (spec.slots - len(positions))
    nonces = [zk_nonce(image_nonces[p]) for p in positions] + [0] * (spec.slots - len(positions))
    counted = [int(s < len(positions) and predictions[s] == slot_labels[s]) for s in range(spec.slots)]
    return Claims(bits, nonces, slot_labels, hidden, logits, counted)


def challenges(statement: Statement, items: list[dict[str, object]]) -> list[tuple[int, list[int]]]:
    """(seed, per-layer challenges) for each item: {"transcript": [...]} (prover) or {"seed": "..."} (verifier)."""
    from .circuit import cache_root
    from .node import run_node

    layers = len(statement.spec.dims) - 1
    answer = run_node("challenge", {"layers": layers, "items": items}, cache_root()).answer
    out = []
    for i, item in enumerate(answer.get("items") or []):
        seed = parse_field(str(item.get("seed")), f"challenge seed {i}")
        rhos = [parse_field(str(r), f"challenge {i}") for r in item.get("rhos") or []]
        if len(rhos) != layers:
            raise ModeldeedError("the o1js challenge step returned the wrong number of challenges")
        out.append((seed, rhos))
    if len(out) != len(items):
        raise ModeldeedError("the o1js challenge step returned the wrong number of seeds")
    return out


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
