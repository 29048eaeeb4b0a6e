"""Transfer learning (Adi et al. 2018, §5.5): move the watermarked model to another dataset with a new head.

The new head has the target task's classes, so the owner verifies as the paper does: with the saved
original output layer put back on top of the transferred body. The attack returns the thief's model
(new head); the base class evaluates the original-head view and makes it the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelSpec, last_linear, replace_last_linear
from ..training import accuracy
from .base import AttackContext, Outcome
from .finetune import TuningAttack, tune


def fit_to_shape(data: Dataset, input_shape: tuple[int, int, int]) -> Dataset:
    """Resize (bilinear, antialiased) and convert channels (grey <-> RGB) so `data` fits a model's input shape."""
    c, h, w = input_shape
    x = data.x
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise ModeldeedError(f"{data.name}: cannot convert {x.shape[1]}-channel images to {c} channels")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    return Dataset(data.name, x.contiguous(), data.y, data.classes)


def holdout_split(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded (train, held-out test) split of the adversary's target data."""
    order = np.random.default_rng([seed, 0x7E57]).permutation(len(data))
    n_test = max(1, int(round(fraction * len(data))))
    if n_test >= len(data):
        raise ModeldeedError(f"{data.name}: {len(data)} samples are too few to hold out {fraction:.0%} for testing")
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


def new_head(old: nn.Linear, num_classes: int, seed: int) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    return head.to(old.weight.device)


def transferred_spec(spec: ModelSpec, num_classes: int) -> ModelSpec:
    """The architecture spec of the thief's model: the same, with the target task's number of classes."""
    if "num_classes" not in spec.arguments:
        raise ModeldeedError(
            f"model {spec.architecture!r} has no num_classes argument, so the transferred model "
            "cannot be described for saving"
        )
    return ModelSpec(spec.architecture, {**spec.arguments, "num_classes": num_classes})


@dataclass(frozen=True, kw_only=True)
class TransferLearning(TuningAttack):
    """Transfer learning: replace the head with one for a new dataset and fine-tune on that dataset.

    Paper: Adi et al., "Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks by
    Backdooring", USENIX Security 2018, §5.5 (CIFAR-10/100 -> STL-10, 20 epochs, RTAL; Table 2).

    Threat model: the thief holds the weights and labelled data of a different task; they keep the body,
    put a new randomly initialised head for their classes on top and train (all layers, like RTAL, or
    only the new head). The owner verifies with the saved original head swapped back in.

    Arguments:
        last_layer_only (bool): train only the new head (False trains every layer, the paper's RTAL). Default: False.
        holdout (float): share of the target data held out to measure the target task when no target test
            set is given (pass `DataSplits` as data to use its test split). Default: 0.2.
        epochs (int): Default: 20 (the paper's).  lr, batch_size, momentum, weight_decay, augment,
            data_fraction, seed, device, progress: see TuningAttack.
        The target data is resized and its channels converted to the model's input shape if needed.

    Returns: (transferred model with the new head, AttackResult). The verdict, trigger accuracy and test
    accuracy after are those with the original head (view "original_head"), the paper's measurement;
    details hold the target task's accuracy.

    Example:
        >>> moved, result = TransferLearning(epochs=20)(model, target_splits, test=source.test, verifier=v)
        >>> result.details["target_test_accuracy"], result.trigger_accuracy
    """

    name: ClassVar[str] = "transfer"
    primary_view: ClassVar[str] = "original_head"
    evaluate_original_head: ClassVar[bool] = True
    last_layer_only: bool = False
    holdout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.holdout < 1.0:
            raise ModeldeedError(f"transfer: holdout must lie in (0, 1), got {self.holdout}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        shape = context.input_shape
        if context.task_test is not None:
            target_train, target_test = data, context.task_test
        else:
            target_train, target_test = holdout_split(data, self.holdout, self.seed)
        target_train, target_test = fit_to_shape(target_train, shape), fit_to_shape(target_test, shape)
        replace_last_linear(model, new_head(last_linear(model), target_train.num_classes, self.seed))
        tune(model, target_train, self.train_config(), last_layer_only=self.last_layer_only, progress=context.progress)
        details: dict[str, Any] = {
            "target": target_train.name,
            "target_classes": target_train.num_classes,
            "target_class_names": list(target_train.classes),
            "target_train_samples": len(target_train),
            "target_test_samples": len(target_test),
            "target_test_accuracy": accuracy(model, target_test),
            "trained": "new head only" if self.last_layer_only else "all layers",
        }
        return Outcome(model, details)
