"""Verify(mk, vk, M) (Adi et al. 2018, Section 4): open every commitment, classify, count agreements.

Why a verdict with reasons rather than a bit: a judge must be able to see why a claim failed
(which trigger did not open, which label looked like the data's true class, how many triggers
disagreed), and how much an acceptance is worth (the chance that a model which never saw the
triggers passes). A broken key is a rejection naming the trigger, not a crash.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..training import accuracy, iterate_chunks
from .keys import MarkingKey, Opening, VerificationKey
from .security import security_figures

log = logging.getLogger(__name__)

NEAR_COPY_RMS = 0.02  # RMS pixel difference under which a trigger counts as a copy of a data image


@dataclass(frozen=True)
class WatermarkVerdict:
    """The outcome of Verify / PVerify: a decision, the reasons against it, and what it is worth."""

    accepted: bool
    reasons: tuple[str, ...]
    key_id: str
    scheme: str
    triggers: int  # how many triggers were classified
    agreements: int  # how many the model labels as committed
    threshold: int  # agreements needed: triggers - floor(epsilon * triggers)
    epsilon: float
    trigger_accuracy: float | None  # None when no model check ran (public part only)
    chance_probability: float  # P[a model that never saw the triggers reaches the threshold]
    chance_log2: float | None
    test_accuracy: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "verdict": "accepted" if self.accepted else "rejected",
            "reasons": list(self.reasons),
            "key_id": self.key_id,
            "scheme": self.scheme,
            "triggers": self.triggers,
            "agreements": self.agreements,
            "threshold": self.threshold,
            "epsilon": self.epsilon,
            "trigger_accuracy": self.trigger_accuracy,
            "chance_probability": self.chance_probability,
            "chance_log2": self.chance_log2,
            "test_accuracy": self.test_accuracy,
            "metrics": dict(self.metrics),
        }


@torch.no_grad()
def classify(model: nn.Module, images: torch.Tensor, num_classes: int, batch_size: int = 1000) -> torch.Tensor:
    """Classify(M, t) for every trigger, in eval mode; a model of the wrong shape is bad input."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    try:
        for chunk in iterate_chunks(len(images), batch_size):
            try:
                logits = model(images[chunk].to(device))
            except RuntimeError as exc:
                raise ModeldeedError(
                    f"the model cannot take the key's inputs of shape {list(images.shape[1:])} "
                    f"({str(exc).splitlines()[0]})"
                ) from None
            if logits.dim() != 2 or logits.shape[1] != num_classes:
                raise ModeldeedError(
                    f"the model outputs {list(logits.shape[1:])} scores per input; the key has {num_classes} classes"
                )
            parts.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)


def data_label_conflicts(opening: Opening, data: Dataset, *, tolerance: float = NEAR_COPY_RMS) -> list[str]:
    """Paper's check T_L(t) != f(t), where f is known: a trigger that copies a data image must not carry its class.

    Abstract triggers lie outside every class by construction; this catches a key made of real
    images with their true labels, which any good model would "recognise".
    """
    if len(opening.indices) == 0 or len(data) == 0:
        return []
    if tuple(data.x.shape[1:]) != tuple(opening.images.shape[1:]):
        raise ModeldeedError(
            f"{data.name} has images of shape {list(data.x.shape[1:])}, the key {list(opening.images.shape[1:])}"
        )
    flat = opening.images.flatten(1).double()
    best = torch.full((len(flat),), math.inf, dtype=torch.float64)
    where = torch.zeros(len(flat), dtype=torch.int64)
    norms = (flat * flat).sum(1)
    for chunk in iterate_chunks(len(data), 4096):
        other = data.x[chunk].flatten(1).double()
        distance = (norms[:, None] + (other * other).sum(1)[None] - 2 * flat @ other.T).clamp_min(0)
        value, index = distance.min(1)
        closer = value < best
        best[closer], where[closer] = value[closer], index[closer] + chunk.start
    rms = (best / flat.shape[1]).sqrt()
    problems = []
    for j, i in enumerate(opening.indices):
        label = opening.labels[j]
        if rms[j] <= tolerance and int(data.y[where[j]]) == label:
            problems.append(
                f"trigger {i}: a copy of {data.name} image {int(where[j])} (RMS difference "
                f"{float(rms[j]):.4f}) committed with its true class {data.classes[label]!r}, "
                "so it is no backdoor"
            )
    return problems


def judge(
    verification_key: VerificationKey,
    opening: Opening,
    model: nn.Module,
    *,
    epsilon: float | None = None,
    test_data: Dataset | None = None,
    reasons: Sequence[str] = (),
    metrics: dict[str, Any] | None = None,
    data: Sequence[Dataset] = (),
) -> WatermarkVerdict:
    """Open `opening` against the key, check labels against `data`, classify, and decide."""
    vk = verification_key
    eps = vk.epsilon if epsilon is None else float(epsilon)
    if epsilon is not None and eps != vk.epsilon:
        log.warning("verifying with epsilon %s instead of the key's %s", eps, vk.epsilon)
    reasons = [*reasons, *opening.failures(vk)]
    for dataset in data:
        reasons += data_label_conflicts(opening, dataset)
    predictions = classify(model, opening.images, len(vk.classes))
    labels = torch.tensor(opening.labels, dtype=torch.int64)
    agreements = int((predictions == labels).sum())
    count = len(opening.indices)
    figures = security_figures(count, len(vk.classes), eps)
    if agreements < figures.threshold:
        reasons.append(
            f"only {agreements} of {count} triggers are classified as committed; "
            f"at least {figures.threshold} are needed (epsilon = {eps})"
        )
    test_accuracy = None
    if test_data is not None:
        if tuple(test_data.input_shape) != tuple(vk.input_shape):
            raise ModeldeedError(
                f"{test_data.name} has images of shape {list(test_data.input_shape)}, the key {list(vk.input_shape)}"
            )
        test_accuracy = accuracy(model, test_data)
    verdict = WatermarkVerdict(
        accepted=not reasons,
        reasons=tuple(reasons),
        key_id=vk.key_id,
        scheme=vk.scheme,
        triggers=count,
        agreements=agreements,
        threshold=figures.threshold,
        epsilon=eps,
        trigger_accuracy=agreements / count if count else 0.0,
        chance_probability=figures.chance_probability,
        chance_log2=figures.chance_log2 if math.isfinite(figures.chance_log2) else None,
        test_accuracy=test_accuracy,
        metrics=dict(metrics or {}),
    )
    log.info("watermark %s: %d/%d triggers agree", "accepted" if verdict.accepted else "rejected", agreements, count)
    return verdict


def key_pair_problems(marking_key: MarkingKey, verification_key: VerificationKey) -> list[str]:
    """Reasons the two keys do not belong together; empty when they do."""
    mk, vk = marking_key, verification_key
    problems = []
    if mk.key_id != vk.key_id:
        problems.append(
            f"the marking key was made for verification key {mk.key_id[:16]}…, "
            f"this verification key is {vk.key_id[:16]}… (a changed or different key)"
        )
    if (mk.scheme, mk.size, mk.sets) != (vk.scheme, vk.size, vk.sets):
        problems.append(
            f"the marking key is a {mk.scheme} key of {mk.size} triggers in {mk.sets} set(s), the "
            f"verification key a {vk.scheme} key of {vk.size} in {vk.sets}"
        )
    if tuple(mk.input_shape) != tuple(vk.input_shape) or tuple(mk.classes) != tuple(vk.classes):
        problems.append("the keys disagree on the input shape or the classes")
    if mk.challenge is not None and mk.challenge != vk.challenge():
        problems.append("the marking key's challenge is not H(verification key)")
    return problems


def verify(
    marking_key: MarkingKey,
    verification_key: VerificationKey,
    model: nn.Module,
    *,
    test_data: Dataset | None = None,
    epsilon: float | None = None,
    data: Sequence[Dataset] = (),
) -> WatermarkVerdict:
    """Verify(mk, vk, M): accept iff every commitment opens and at most floor(ε·|T|) triggers disagree.

    Checks the triggers that Mark embedded (the hidden half of a cut-and-choose key, all others).
    `epsilon` defaults to the one fixed in the verification key; `test_data` adds the model's test
    accuracy; every dataset in `data` is searched for triggers that copy a data image with its true class.
    """
    problems = key_pair_problems(marking_key, verification_key)
    if marking_key.size != verification_key.size:
        raise ModeldeedError(problems[-1] if problems else "the keys hold different numbers of triggers")
    opening = marking_key.opening(marking_key.marking_indices())
    return judge(verification_key, opening, model, epsilon=epsilon, test_data=test_data, reasons=problems, data=data)
