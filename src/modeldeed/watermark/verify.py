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
from .limits import check_epsilon
from .security import binomial_tail, log2_fraction, security_figures

log = logging.getLogger(__name__)

NEAR_COPY_RMS = 0.02  # RMS pixel difference under which a trigger counts as a copy of a data image


CHOSEN_LABELS_NOTE = (
    "the labels were chosen by the key's maker, not derived from the image commitments: they could have been "
    "picked with hindsight, after seeing the model, unless the key was registered before the model appeared"
)
NOT_BOUND_NOTE = (
    "the key is not bound in time: no registration of it was checked, so nothing shows that it existed before "
    "the model (its 'created' time is its maker's own word)"
)
DEMONSTRATION_NOTE = (
    "demonstration key: its secrets follow from a public seed ({seed}), so anyone can remake it; it proves "
    "nothing about ownership"
)


def label_notes(verification_key: VerificationKey) -> list[str]:
    """What the key itself says against its worth: a demonstration key, labels chosen by its maker."""
    vk = verification_key
    notes = []
    if vk.demonstration_seed is not None:
        notes.append(DEMONSTRATION_NOTE.format(seed=vk.demonstration_seed))
    if vk.label_kind == "chosen":
        notes.append(CHOSEN_LABELS_NOTE)
    return notes


def key_notes(verification_key: VerificationKey, registered: str | None = None) -> list[str]:
    """What every verdict on this key says besides the numbers: `label_notes`, then whether it is bound in time.

    `registered` is what a checked registration says (e.g. "registered on log L at T"); without one the
    verdict says that the key is not bound in time.
    """
    return [*label_notes(verification_key), registered if registered is not None else NOT_BOUND_NOTE]


@dataclass(frozen=True)
class WatermarkVerdict:
    """The outcome of Verify / PVerify: a decision, the reasons against it, and what it is worth.

    `notes` say what the numbers cannot: labels chosen by the key's maker, a demonstration key, whether the
    key is bound in time. They never turn a rejection into an acceptance.
    """

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
    labels: str = "derived"  # the key's labels: "derived" from the image commitments, or "chosen"
    demonstration: bool = False
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "verdict": "accepted" if self.accepted else "rejected",
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "key_id": self.key_id,
            "scheme": self.scheme,
            "labels": self.labels,
            "demonstration": self.demonstration,
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


REFERENCE_ALPHA_LOG2 = -20.0  # an honest key fails the reference test with probability <= 2^-20


def log2_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def reference_model_problem(
    reference_model: nn.Module, opening: Opening, num_classes: int, alpha_log2: float = REFERENCE_ALPHA_LOG2
) -> tuple[str | None, dict[str, Any]]:
    """A classifier trained on the data stands in for f: too many agreements mean correctly labelled triggers.

    An honest key's labels are uniform and independent of the images (derived by a hash, or drawn at
    random), so a reference model that never saw the triggers agrees with them Bin(m, 1/|L|) times whatever
    it predicts; far more is evidence of a key built from real images with their true classes.
    """
    predictions = classify(reference_model, opening.images, num_classes)
    count = len(opening.indices)
    agreements = int((predictions == torch.tensor(opening.labels, dtype=torch.int64)).sum())
    tail_log2 = log2_fraction(binomial_tail(count, agreements, num_classes))
    metrics = {"reference_agreements": agreements, "reference_tail_log2": log2_or_none(tail_log2)}
    if tail_log2 < alpha_log2:
        return (
            f"a reference classifier gives {agreements} of {count} checked triggers their committed label; random "
            f"labels would do that with probability 2^{tail_log2:.1f}: the triggers look like correctly labelled "
            "data, not a backdoor"
        ), metrics
    return None, metrics


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
    reference_model: nn.Module | None = None,
    notes: Sequence[str] = (),
    registered: str | None = None,
) -> WatermarkVerdict:
    """Open `opening` against the key, check labels against `data` and `reference_model`, classify, decide."""
    vk = verification_key
    eps = vk.epsilon if epsilon is None else check_epsilon(epsilon)
    if eps != vk.epsilon:
        log.warning("verifying with epsilon %s instead of the key's %s", eps, vk.epsilon)
        notes = [
            *notes,
            f"epsilon was set to {eps} for this check; the key fixes {vk.epsilon}, and only that counts in a dispute",
        ]
    reasons = [*reasons, *opening.failures(vk)]
    metrics = dict(metrics or {})
    for dataset in data:
        reasons += data_label_conflicts(opening, dataset)
    if reference_model is not None:
        problem, more = reference_model_problem(reference_model, opening, len(vk.classes))
        metrics.update(more)
        if problem:
            reasons.append(problem)
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
        metrics=metrics,
        labels=vk.label_kind,
        demonstration=vk.demonstration,
        notes=(*notes, *key_notes(vk, registered)),
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
    reference_model: nn.Module | None = None,
    registered: str | None = None,
) -> WatermarkVerdict:
    """Verify(mk, vk, M): accept iff every commitment opens, labels are as the key says, and at most
    floor(ε·|T|) triggers disagree.

    Checks the triggers that Mark embedded (the hidden half of a cut-and-choose key, all others). A key whose
    labels are derived must carry exactly the labels its image commitments dictate. `epsilon` defaults to the
    one fixed in the key; `test_data` adds the model's test accuracy; every dataset in `data` is searched for
    triggers that copy a data image with its true class; `reference_model` (a model trained on the data)
    rejects triggers it labels as committed far more often than random labels allow. `registered` is what a
    checked registration says about the key's time (the verdict otherwise notes that the key is not bound).
    """
    problems = key_pair_problems(marking_key, verification_key)
    if marking_key.size != verification_key.size:
        raise ModeldeedError(problems[-1] if problems else "the keys hold different numbers of triggers")
    opening = marking_key.opening(marking_key.marking_indices())
    return judge(
        verification_key,
        opening,
        model,
        epsilon=epsilon,
        test_data=test_data,
        reasons=problems,
        data=data,
        reference_model=reference_model,
        registered=registered,
    )
