"""The Attack base: hyper-parameters in the constructor, model and data in the call, one judge for all.

Every attack is a frozen dataclass of keyword-only hyper-parameters. Calling it with a model and the
adversary's data returns the attacked model and an `AttackResult`. The base class's `__call__` is final:
it copies the model (the caller's model is never touched), draws the adversary's share of the data,
times the attack, and then judges the outcome the same way for every attack, with the real watermark
verifier and a measured test accuracy. No attack grades itself.

Success rule (Lukas et al., "SoK: How Robust is Image Classification Deep Neural Network Watermarking?",
IEEE S&P 2022, the Watermark-Robustness-Toolbox study): an attack removes the watermark iff the
verifier rejects the attacked model AND its test accuracy dropped by less than 5 percentage points.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, final

import numpy as np
import torch
from torch import nn

from ..data import Dataset, DataSplits
from ..errors import ModeldeedError
from ..models import last_linear, replace_last_linear
from ..training import accuracy

log = logging.getLogger(__name__)

MAX_ACCURACY_DROP_POINTS = 5.0
RULE = "watermark removed iff the verifier rejects and test accuracy dropped by less than {:g} points"


class VerdictLike(Protocol):
    """What the attacks read from a verifier's verdict (the watermark's `Verdict` has these and more)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def trigger_accuracy(self) -> float: ...


Verifier = Callable[[nn.Module], VerdictLike]
"""The real watermark verifier bound to a key: model in, verdict out (see `attacks.verifier`)."""


def watermark_removed(
    *,
    accepted: bool,
    test_accuracy_before: float,
    test_accuracy_after: float,
    max_drop_points: float = MAX_ACCURACY_DROP_POINTS,
) -> bool:
    """The success rule. Accuracies are fractions in [0, 1]; the drop is compared in percentage points.

    The drop is rounded to 1e-9 points first, so 0.90 -> 0.85 is a drop of exactly 5 points (not removed)
    rather than 5.000000000000004 or 4.999999999999996, whichever float arithmetic happens to give.
    """
    drop = round(100.0 * (test_accuracy_before - test_accuracy_after), 9)
    return (not accepted) and drop < max_drop_points


@dataclass(frozen=True)
class Evaluation:
    """One view of a model: its test accuracy and the real verifier's verdict on it."""

    test_accuracy: float
    trigger_accuracy: float
    accepted: bool
    chance_probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AttackResult:
    """What happened, measured from outside the attack. `to_json()` is what the CLI and the suite write.

    `trigger_accuracy`, `accepted` and `test_accuracy_after` are those of the primary `view`: the attacker's
    head (the model a thief would deploy) for every attack except transfer learning, whose new head has a
    different label space, so it is verified with the original head swapped back in (as the paper does).
    `attacker_head` and `original_head` hold both views where they exist, clearly labelled.
    """

    attack: str
    parameters: dict[str, Any]
    data: dict[str, Any]
    test_accuracy_before: float
    test_accuracy_after: float
    trigger_accuracy_before: float
    trigger_accuracy: float
    accepted_before: bool
    accepted: bool
    watermark_removed: bool
    view: str
    attacker_head: Evaluation | None
    original_head: Evaluation | None
    wall_seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    rule: str = RULE.format(MAX_ACCURACY_DROP_POINTS)

    @property
    def accuracy_drop_points(self) -> float:
        return round(100.0 * (self.test_accuracy_before - self.test_accuracy_after), 9)

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["accuracy_drop_points"] = self.accuracy_drop_points
        return doc


@dataclass
class AttackContext:
    """What an attack's `run` may use besides the model and its data (never the verdict)."""

    task_test: Dataset | None  # a test set of the adversary's own task, when one was given (transfer)
    original_head: nn.Linear | None  # a copy of the head before the attack
    input_shape: tuple[int, int, int]  # the model's input shape (that of the owner's test set)
    classes: tuple[str, ...]  # the model's classes (those of the owner's test set)
    device: str
    progress: bool


@dataclass(frozen=True)
class Outcome:
    """What `run` returns: the attacked model and attack-specific facts (sparsity reached, student accuracy...)."""

    model: nn.Module
    details: dict[str, Any] = field(default_factory=dict)


def adversary_data(data: Dataset, fraction: float, seed: int) -> Dataset:
    """The adversary's share: all of `data` when fraction is 1, else a seeded random subset of that size."""
    if not 0.0 < fraction <= 1.0:
        raise ModeldeedError(f"the adversary's data fraction must lie in (0, 1], got {fraction}")
    n = len(data)
    if fraction == 1.0:
        return data
    k = max(1, int(round(fraction * n)))
    order = np.random.default_rng([seed, 0xDA7A]).permutation(n)[:k]
    return data.subset(np.sort(order), f"{data.name}[{k}/{n}]")


@dataclass(frozen=True, kw_only=True)
class Attack:
    """Base of every attack. Subclasses add keyword-only hyper-parameters and implement `run`.

    Arguments shared by all attacks:
        data_fraction (float): share of the given data the adversary holds, drawn with `seed`. Default: 1.0
            (the paper's setting: as much data as the owner trained with).
        seed (int): seed of every random choice the attack makes. Default: 0.
        device (str): where the attack computes. Default: "cpu".
        progress (bool): show progress bars on long work. Default: True.
    """

    name: ClassVar[str] = "attack"
    primary_view: ClassVar[str] = "attacker_head"  # or "original_head" (transfer learning)
    evaluate_original_head: ClassVar[bool] = False  # also verify with the original head swapped back in

    data_fraction: float = 1.0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override Attack.__call__; implement run() instead")

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ModeldeedError(f"{self.name}: data_fraction must lie in (0, 1], got {self.data_fraction}")

    def parameters(self) -> dict[str, Any]:
        """The hyper-parameters as plain JSON values (runtime settings left out)."""
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("device", "progress")}
        return {k: _plain(v) for k, v in doc.items()}

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        """Attack `model` (a private copy: modify it in place or return another) with the adversary's `data`."""
        raise NotImplementedError

    def planned_epochs(self) -> float:
        """Epochs of training over the adversary's data this attack will run (0: it only edits weights or
        inputs). Progress bars weight their ETA by it; it is an estimate, never part of a result."""
        return 0.0

    @final
    def __call__(
        self, model: nn.Module, data: Dataset | DataSplits, *, test: Dataset, verifier: Verifier
    ) -> tuple[nn.Module, AttackResult]:
        """Attack a copy of `model` with `data` and judge it with `verifier` and `test`.

        Args:
            model: the watermarked model (left unchanged).
            data: the adversary's data pool; a `DataSplits` also gives the adversary's own test set
                (used by transfer learning to measure its new task).
            test: the owner's test set, for the accuracy before and after.
            verifier: the real watermark verifier bound to the owner's key (`attacks.watermark_verifier`).

        Returns:
            (attacked model, AttackResult).
        """
        pool, task_test = (data.train, data.test) if isinstance(data, DataSplits) else (data, None)
        adversary = adversary_data(pool, self.data_fraction, self.seed)
        victim = copy.deepcopy(model).to(self.device)
        head = _head_copy(victim)
        before = evaluate(victim, test, verifier)
        log.info(
            "%s: before the attack test accuracy %.4f, trigger accuracy %.4f",
            self.name,
            before.test_accuracy,
            before.trigger_accuracy,
        )
        started = time.perf_counter()
        outcome = self.run(
            victim,
            adversary,
            AttackContext(task_test, head, test.input_shape, test.classes, self.device, self.progress),
        )
        wall = time.perf_counter() - started
        attacked = outcome.model
        attacker_view = evaluate(attacked, test, verifier) if _same_label_space(attacked, test) else None
        original_view = None
        if self.evaluate_original_head and head is not None:
            original_view = evaluate(with_head(attacked, head), test, verifier)
        primary = original_view if self.primary_view == "original_head" else attacker_view
        if primary is None:
            raise ModeldeedError(f"{self.name}: the attacked model cannot be verified in the {self.primary_view} view")
        removed = watermark_removed(
            accepted=primary.accepted,
            test_accuracy_before=before.test_accuracy,
            test_accuracy_after=primary.test_accuracy,
        )
        result = AttackResult(
            attack=self.name,
            parameters=self.parameters(),
            data=_describe(pool, adversary, self),
            test_accuracy_before=before.test_accuracy,
            test_accuracy_after=primary.test_accuracy,
            trigger_accuracy_before=before.trigger_accuracy,
            trigger_accuracy=primary.trigger_accuracy,
            accepted_before=before.accepted,
            accepted=primary.accepted,
            watermark_removed=removed,
            view=self.primary_view,
            attacker_head=attacker_view,
            original_head=original_view,
            wall_seconds=wall,
            details={k: _plain(v) for k, v in outcome.details.items()},
        )
        log.info(
            "%s: after the attack test accuracy %.4f, trigger accuracy %.4f, %s",
            self.name,
            result.test_accuracy_after,
            result.trigger_accuracy,
            "watermark removed" if removed else "watermark not removed",
        )
        return attacked, result


def evaluate(model: nn.Module, test: Dataset, verifier: Verifier) -> Evaluation:
    """Test accuracy plus the real verifier's verdict on `model`."""
    verdict = verifier(model)
    chance = getattr(verdict, "chance_probability", None)
    return Evaluation(
        accuracy(model, test),
        float(verdict.trigger_accuracy),
        bool(verdict.accepted),
        None if chance is None else float(chance),
    )


def with_head(model: nn.Module, head: nn.Linear) -> nn.Module:
    """A copy of `model` with `head` (copied) as its last linear layer: the paper's verification view."""
    swapped = copy.deepcopy(model)
    device = next(swapped.parameters()).device
    replace_last_linear(swapped, copy.deepcopy(head).to(device))
    return swapped


def _head_copy(model: nn.Module) -> nn.Linear | None:
    try:
        return copy.deepcopy(last_linear(model))
    except ValueError:
        return None


def _same_label_space(model: nn.Module, test: Dataset) -> bool:
    try:
        return last_linear(model).out_features == test.num_classes
    except ValueError:  # no linear head: let the verifier decide
        return True


def _describe(pool: Dataset, adversary: Dataset, attack: Attack) -> dict[str, Any]:
    return {
        "name": pool.name,
        "available": len(pool),
        "samples": len(adversary),
        "fraction": attack.data_fraction,
        "seed": attack.seed,
        "fingerprint": adversary.fingerprint,
    }


def _plain(value: Any) -> Any:
    """JSON-friendly form of hyper-parameter values (tuples, specs, tensors' scalars)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "to_json"):
        return value.to_json()
    return repr(value)
