"""A user's own training step, described so that a verifier can rebuild it and replay it exactly.

A proof of a user's own loop (`pol.own.PolRecorder`) carries a `LoopDoc` (proof.json and the statement field
`loop`): the step function (`module:function`, imported only with trust; the built-in
`modeldeed.pol.loop:classification_step` needs none), the optimizer (SGD with or without momentum and Nesterov,
Adam, AdamW) with every hyper-parameter, the learning-rate schedule (StepLR, CosineAnnealingLR, OneCycleLR of
`torch.optim.lr_scheduler`, stepped per step or per epoch), the gradient accumulation steps and the clipping norm.

Training and every replay run a step through one object, `LoopRunner.run_step`: the step function, then the
schedule. The schedule's state is never read from a checkpoint: a replay builds a fresh scheduler from the
description and steps it to the interval's start (`LoopRunner.at_step`), so the learning rate (and OneCycle's
momentum) of every step follows from the statement alone.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from ..errors import FormatError, ModeldeedError
from ..files import canonical_json
from ..schema import Document

BUILTIN_STEP = "modeldeed.pol.loop:classification_step"
MAX_ACCUMULATION = 1 << 12
MAX_SCHEDULE_STEPS = 50_000_000
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
# The optimizer state tensors each kind keeps per parameter (what a checkpoint may hold under optimizer/).
STATE_KEYS = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq", "step"),
    "adamw": ("exp_avg", "exp_avg_sq", "step"),
}


class OptimizerDoc(Document):
    """The optimizer and all its hyper-parameters (SGD: momentum, dampening, nesterov; Adam/AdamW: betas, eps)."""

    kind: Literal["sgd", "adam", "adamw"]
    lr: PositiveFloat
    weight_decay: NonNegative
    momentum: Unit | None = None
    dampening: Unit | None = None
    nesterov: bool | None = None
    betas: Annotated[list[Unit], Field(min_length=2, max_length=2)] | None = None
    eps: PositiveFloat | None = None
    amsgrad: bool | None = None
    foreach: bool | None = None  # PyTorch's implementation choice: it changes the float results, so it is bound

    @model_validator(mode="after")
    def _fields_of_kind(self) -> OptimizerDoc:
        sgd = (self.momentum, self.dampening, self.nesterov)
        adam = (self.betas, self.eps, self.amsgrad)
        if self.kind == "sgd" and (None in sgd or any(v is not None for v in adam)):
            raise ValueError("an sgd optimizer has momentum, dampening and nesterov, and no betas, eps or amsgrad")
        if self.kind != "sgd" and (None in adam or any(v is not None for v in sgd)):
            raise ValueError(f"an {self.kind} optimizer has betas, eps and amsgrad, and no momentum or nesterov")
        if self.kind == "sgd" and self.nesterov and (not self.momentum or self.dampening):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        return self

    def arguments(self) -> dict[str, Any]:
        doc = self.model_dump(exclude={"kind"}, exclude_none=True)
        doc["foreach"] = self.foreach
        if "betas" in doc:
            doc["betas"] = tuple(doc["betas"])
        return doc


SCHEDULE_ARGUMENTS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "none": {},
    "step": {"step_size": int, "gamma": float},
    "cosine": {"T_max": int, "eta_min": float},
    "onecycle": {
        "max_lr": float,
        "total_steps": int,
        "pct_start": float,
        "anneal_strategy": str,
        "div_factor": float,
        "final_div_factor": float,
        "three_phase": bool,
        "cycle_momentum": bool,
        "base_momentum": float,
        "max_momentum": float,
    },
}
SCHEDULERS: dict[str, Callable[..., Any]] = {
    "step": torch.optim.lr_scheduler.StepLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "onecycle": torch.optim.lr_scheduler.OneCycleLR,
}


SCHEDULE_ERRORS = (ValueError, TypeError, ArithmeticError, IndexError, KeyError)


class SchedulerDoc(Document):
    """A `torch.optim.lr_scheduler` schedule by kind and its constructor arguments (all of them, typed)."""

    kind: Literal["none", "step", "cosine", "onecycle"]
    interval: Literal["step", "epoch"] = "step"  # scheduler.step() after every step, or after every epoch
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _typed_arguments(self) -> SchedulerDoc:
        wanted = SCHEDULE_ARGUMENTS[self.kind]
        if set(self.arguments) - set(wanted):
            raise ValueError(f"{self.kind} takes no argument {sorted(set(self.arguments) - set(wanted))[0]!r}")
        for name, value in self.arguments.items():
            kind = wanted[name]
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"argument {name!r} must be a number")
            if kind is float and not (math.isfinite(value) and 0 <= value <= 1e9):
                raise ValueError(f"argument {name!r} must be a finite number in [0, 1e9]")
            if kind is int and (type(value) is not int or not 1 <= value <= MAX_SCHEDULE_STEPS):
                raise ValueError(f"argument {name!r} must be an integer in [1, {MAX_SCHEDULE_STEPS}]")
            if kind in (bool, str) and type(value) is not kind:
                raise ValueError(f"argument {name!r} must be a {kind.__name__}")
        if self.arguments.get("anneal_strategy", "cos") not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be 'cos' or 'linear'")
        if self.kind == "onecycle" and "total_steps" not in self.arguments:
            raise ValueError("a onecycle schedule needs total_steps")
        if self.kind != "none":  # arguments torch refuses (or divides by zero on) are refused here, not mid-replay
            probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scheduler = SCHEDULERS[self.kind](probe, **self.arguments)
                    scheduler.step()
            except SCHEDULE_ERRORS as exc:
                raise ValueError(f"the arguments do not make a {self.kind} schedule ({str(exc)[:120]})") from None
        return self


class LoopDoc(Document):
    """What replays a user's step: proof.json and statement field `loop` (docs/formats.md, "Own training loop")."""

    step: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
    optimizer: OptimizerDoc
    scheduler: SchedulerDoc
    accumulation: Annotated[int, Field(ge=1, le=MAX_ACCUMULATION)] = 1
    clip_norm: Annotated[float, Field(gt=0.0, le=1e9, allow_inf_nan=False)] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def same_as(self, other: LoopDoc | None) -> bool:
        return other is not None and canonical_json(self.to_json()) == canonical_json(other.to_json())


StepFunction = Callable[..., torch.Tensor]


def classification_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    accumulation: int = 1,
    clip_norm: float | None = None,
) -> torch.Tensor:
    """Cross-entropy over `accumulation` equal micro-batches (gradients summed, each loss / accumulation), the
    gradient norm clipped to `clip_norm`, one optimizer step. Returns the mean loss (detached)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=inputs.device)
    for x, y in zip(inputs.tensor_split(accumulation), labels.tensor_split(accumulation)):
        if len(y) == 0:
            continue
        loss = F.cross_entropy(model(x), y) / accumulation
        loss.backward()
        total += loss.detach()
    if clip_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    return total


def resolve_step(name: str, *, trust_code: bool, source: str | Path = "loop") -> StepFunction:
    """The step function `module:function`; user code is imported only with trust (CLI --trust-model-code)."""
    if name == BUILTIN_STEP:
        return classification_step
    if not trust_code:
        raise ModeldeedError(
            f"{source}: the training step {name!r} is user code; replaying it imports and runs that code, so pass "
            "trust_code=True (--trust-model-code) only for code you trust"
        )
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModeldeedError(f"{source}: cannot import module {module_name!r} for step {name!r} ({exc})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ModeldeedError(f"{source}: {module_name!r} has no callable {attr!r}")
    return function


def describe_optimizer(optimizer: torch.optim.Optimizer) -> OptimizerDoc:
    """The description of a user's SGD, Adam or AdamW (one parameter group, nothing a replay cannot rebuild)."""
    kind = next((k for k, cls in OPTIMIZERS.items() if type(optimizer) is cls), None)
    if kind is None:
        raise ModeldeedError(f"optimizer {type(optimizer).__name__} is not supported: use SGD, Adam or AdamW")
    if len(optimizer.param_groups) != 1:
        raise ModeldeedError("the optimizer must have one parameter group (a replay rebuilds one)")
    group = optimizer.param_groups[0]
    for flag in ("maximize", "capturable", "differentiable", "fused"):
        if group.get(flag):
            raise ModeldeedError(f"optimizer option {flag}=True is not supported")
    if kind == "adam" and group.get("decoupled_weight_decay"):
        raise ModeldeedError("Adam with decoupled_weight_decay is AdamW: use torch.optim.AdamW")
    fields: dict[str, Any] = {
        "kind": kind,
        "lr": float(group.get("initial_lr", group["lr"])),
        "weight_decay": float(group["weight_decay"]),
        "foreach": group.get("foreach"),
    }
    if kind == "sgd":
        fields.update(
            momentum=float(group["momentum"]), dampening=float(group["dampening"]), nesterov=bool(group["nesterov"])
        )
    else:
        fields.update(betas=[float(b) for b in group["betas"]], eps=float(group["eps"]), amsgrad=bool(group["amsgrad"]))
    return OptimizerDoc(**fields)


def build_optimizer(params: Sequence[nn.Parameter], doc: OptimizerDoc) -> torch.optim.Optimizer:
    if not params:
        raise ModeldeedError("no trainable parameters")
    return OPTIMIZERS[doc.kind](list(params), **doc.arguments())


def state_keys(doc: OptimizerDoc) -> tuple[str, ...]:
    keys = STATE_KEYS[doc.kind]
    return (*keys, "max_exp_avg_sq") if doc.amsgrad else keys


class LoopRunner:
    """The model, optimizer, schedule and step function of one run or replay; `run_step` is the one step."""

    def __init__(
        self,
        loop: LoopDoc,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        step_function: StepFunction,
        steps_per_epoch: int,
    ) -> None:
        self.loop, self.model, self.optimizer = loop, model, optimizer
        self.step_function = step_function
        self.steps_per_epoch = steps_per_epoch
        kind = loop.scheduler.kind
        self.scheduler = None if kind == "none" else SCHEDULERS[kind](optimizer, **loop.scheduler.arguments)
        self.steps_done = 0

    @property
    def lr(self) -> float:
        """The learning rate the next step trains with."""
        return float(self.optimizer.param_groups[0]["lr"])

    def at_step(self, step: int) -> LoopRunner:
        """Advance the fresh schedule to global step `step` (re-derived, never read from a checkpoint)."""
        if self.steps_done != 0:
            raise ModeldeedError("at_step() positions a fresh runner only")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": intended here
            for _ in range(self.schedule_steps(step)):
                assert self.scheduler is not None
                try:
                    self.scheduler.step()
                except SCHEDULE_ERRORS as exc:
                    raise FormatError(f"field 'loop.scheduler': the schedule fails at step {step} ({exc})") from None
        self.steps_done = step
        return self

    def schedule_steps(self, step: int) -> int:
        if self.scheduler is None:
            return 0
        return step if self.loop.scheduler.interval == "step" else step // self.steps_per_epoch

    def run_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One training step as recorded and as replayed: the step function, then the schedule."""
        loss = self.step_function(
            self.model,
            self.optimizer,
            inputs,
            labels,
            accumulation=self.loop.accumulation,
            clip_norm=self.loop.clip_norm,
        )
        before = self.schedule_steps(self.steps_done)
        self.steps_done += 1
        if self.scheduler is not None and self.schedule_steps(self.steps_done) > before:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a step function that skipped optimizer.step() is still recorded
                try:
                    self.scheduler.step()
                except SCHEDULE_ERRORS as exc:
                    raise FormatError(
                        f"field 'loop.scheduler': the schedule fails at step {self.steps_done} ({exc})"
                    ) from None
        if not isinstance(loss, torch.Tensor):
            raise ModeldeedError(f"the step function {self.loop.step} must return the loss as a tensor")
        return loss.detach()


_LRS: dict[str, list[float]] = {}


def lr_sequence(loop: LoopDoc, steps_per_epoch: int, total: int) -> list[float]:
    """The learning rate of every step 0..total (entry `total`: the rate after the last step), from the
    description alone: the same optimizer class and scheduler stepped on one scalar parameter."""
    key = canonical_json([loop.to_json(), steps_per_epoch, total]).decode()
    cached = _LRS.get(key)
    if cached is not None:
        return cached
    if total > MAX_SCHEDULE_STEPS:
        raise ModeldeedError(f"{total} steps exceed the {MAX_SCHEDULE_STEPS} a schedule is derived for")
    probe = nn.Parameter(torch.zeros(1))
    runner = LoopRunner(
        loop, nn.Identity(), build_optimizer([probe], loop.optimizer), classification_step, steps_per_epoch
    )
    lrs = [runner.lr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(1, total + 1):
            if runner.scheduler is not None and runner.schedule_steps(step) > runner.schedule_steps(step - 1):
                try:
                    runner.scheduler.step()
                except SCHEDULE_ERRORS as exc:
                    raise FormatError(f"field 'loop.scheduler': the schedule fails at step {step} ({exc})") from None
            lrs.append(runner.lr)
    _LRS.clear()
    _LRS[key] = lrs
    return lrs
