"""Distillation / model extraction: a fresh student learns the watermarked model's answers on the attacker's data.

The student is trained by the one loop. Hard labels are the teacher's predicted classes; soft labels are
the teacher's softmax at a temperature, swapped into each batch by a hook (cross-entropy takes class
probabilities as targets). The trigger set is never queried, so whatever of the watermark the student
shows it learned from the teacher's behaviour on ordinary data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelSpec, build_model
from ..training import Batch, Hook, TrainState, iterate_chunks, predict
from .base import AttackContext, Outcome
from .finetune import TuningAttack, tune


class SoftTargets(Hook):
    """Replace each batch's labels with the teacher's class probabilities for the same samples."""

    def __init__(self, probabilities: torch.Tensor) -> None:
        self.probabilities = probabilities

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        index = torch.as_tensor(batch.indices, dtype=torch.int64)
        batch.labels = self.probabilities[index].to(batch.inputs.device)
        return batch


@torch.no_grad()
def teacher_probabilities(
    model: nn.Module, x: torch.Tensor, temperature: float, device: str, batch_size: int = 1000
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        parts = [
            torch.softmax(model(x[s].to(device)) / temperature, dim=1).cpu() for s in iterate_chunks(len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """The same architecture with every layer re-initialised from `seed` (global RNG untouched).

    The draw happens on the CPU, so the same seed gives the same student on every device.
    """
    device = next(model.parameters()).device
    student = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in student.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return student.to(device)


@dataclass(frozen=True, kw_only=True)
class Distillation(TuningAttack):
    """Distillation / model extraction: train a fresh model on the watermarked model's labels or soft outputs.

    Paper: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015; as a watermark removal
    attack: Lukas et al. (SoK, IEEE S&P 2022: "knowledge distillation", "retraining"/extraction).

    Threat model: black-box query access to the watermarked model plus the attacker's own unlabelled
    inputs (their labels are never used); the student's architecture is the attacker's choice.

    Arguments:
        soft (bool): learn the teacher's softmax at `temperature` (True) or its predicted classes. Default: False.
        temperature (float): softmax temperature for soft labels, > 0. Default: 4.0.
        student (ModelSpec | None): the student's architecture; None re-initialises a copy of the teacher's.
            Default: None.
        epochs (int): Default: 20.  lr, batch_size, momentum, weight_decay, augment, data_fraction, seed,
            device, progress: see TuningAttack.

    Returns: (student, AttackResult); details["agreement"] is the share of the attacker's inputs on which
    student and teacher agree.

    Example:
        >>> student, result = Distillation(soft=True, data_fraction=0.5)(model, splits.train, test=splits.test,
        ...                                                               verifier=v)
    """

    name: ClassVar[str] = "distill"
    soft: bool = False
    temperature: float = 4.0
    student: ModelSpec | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise ModeldeedError(f"distill: temperature must be > 0, got {self.temperature}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        teacher_labels = predict(model, data.x, device=context.device)
        queried = Dataset(f"{data.name} (teacher's labels)", data.x, teacher_labels, data.classes)
        if self.student is None:
            student = fresh_copy(model, self.seed)
        else:
            student = build_model(self.student, seed=self.seed)
        student.to(context.device)
        hooks = []
        if self.soft:
            hooks.append(SoftTargets(teacher_probabilities(model, data.x, self.temperature, context.device)))
        tune(student, queried, self.train_config(), hooks=hooks, progress=context.progress)
        agreement = float((predict(student, data.x, device=context.device) == teacher_labels).float().mean())
        details: dict[str, Any] = {
            "labels": "soft" if self.soft else "hard",
            "queries": len(data),
            "agreement": agreement,
            "student": self.student.to_json() if self.student else "teacher's architecture",
        }
        return Outcome(student, details)
