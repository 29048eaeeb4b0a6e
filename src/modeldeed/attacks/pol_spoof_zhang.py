"""Zhang et al.'s spoofs: "adversarial examples" for proof-of-learning (IEEE S&P 2022), Attacks I, II and III.

Paper: R. Zhang, J. Liu, Y. Ding, Z. Wang, Q. Wu, K. Ren, '"Adversarial Examples" for Proof-of-Learning'.
Threat model: the adversary holds W_T and the training data and may modify the data (Jia et al.'s model).

W0 comes from the sort trick and the checkpoints lie on the straight line from W0 to W_T (`pol_spoof`). For
every step the attack takes a real batch (X, y) and optimises noise R with L-BFGS, through a double
backward pass, to

    min_R  || grad_W CE(f_W(clamp(X + R, 0, 1)), y) - g* ||^2 + lambda ||R||^2

then takes the real training step (`sgd_step`) on clamp(X + R, 0, 1) and stores those exact inputs in the
proof. A crafted batch is kept when the gradient gap is below `gradient_threshold` (the reference's gd) and
||R||^2 below `noise_threshold` (nd); otherwise it is retried on a fresh random batch, up to `retries` times,
and the best attempt is kept.

Momentum. The reference writes the objective as ||grad + G||^2 with G a weight difference, as if one step
moved the weights by -lr·grad. With SGD momentum mu and weight decay wd (what `sgd_step` does) a step is

    buf' = mu·buf + grad + wd·W,   W' = W - lr·buf'

so the gradient that makes the step land exactly on a target W* is

    g* = (W - W*)/lr - mu·buf - wd·W

computed from the optimizer's real momentum buffer. That is what the attacks below aim at:

- Attack I (`ZhangAttack1`): W* is the next point on the straight line inside the interval, re-aimed from
  wherever the previous step landed. Its checkpoints carry the momentum buffer of steady motion along the line
  (buf = -v/lr for a per-step move v), so the crafted gradients only supply the remaining (1 - mu)·v/lr.
  Reference settings: lambda = 1, L-BFGS 100 iterations x 10 rounds, gd = nd = 500, 1 try.
- Attack II (`ZhangAttack2`): the reference's G = W_j - W_start, i.e. every step cancels the drift from the
  interval's start: W* = W_start. Checkpoints carry zero momentum. lambda = 1, 10 iterations, gd = nd = 30,
  10 tries.
- Attack III (`ZhangAttack3`): G = 0, a vanishing gradient, on one big batch of k·b samples per interval,
  optimised once at the interval's start and sliced into the k steps. lambda = 0.1, 10 iterations,
  tolerance_grad = 0.1, gd = 15, nd = 20, 30 tries.

The reference thresholds gd/nd were set for CIFAR-10/ResNet-20; they are hyper-parameters here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModeldeedError
from ..training import make_optimizer
from .pol_spoof import (
    ProofSpoof,
    SpoofCheckpoint,
    SpoofContext,
    SpoofedTrajectory,
    SpoofStep,
    checkpoint_steps,
    distances,
    flat_parameters,
    flat_state,
    load_momentum,
    progress_bar,
    zero_momentum,
)

log = logging.getLogger(__name__)


@dataclass
class Crafted:
    """One crafted batch: the exact inputs to store, and how well they met the objective."""

    inputs: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray
    gradient_gap: float  # ||grad - g*||^2
    noise: float  # ||R||^2
    accepted: bool


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def needed_gradient(
    model: nn.Module, optimizer: torch.optim.Optimizer, target: list[torch.Tensor], lr: float
) -> list[torch.Tensor]:
    """g* = (W - W*)/lr - mu·buf - wd·W: the loss gradient that makes the next `sgd_step` land on `target`."""
    group = optimizer.param_groups[0]
    mu, wd = float(group["momentum"]), float(group["weight_decay"])
    out = []
    for p, t in zip(trainable(model), target):
        w = p.detach()
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        g = (w - t.to(w.device, w.dtype)) / lr - wd * w
        if buf is not None and mu:
            g = g - mu * buf
        out.append(g)
    return out


def craft_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: list[torch.Tensor] | None,
    *,
    lam: float,
    iterations: int,
    rounds: int,
    tolerance_grad: float,
    on_evaluation: object = None,
) -> tuple[torch.Tensor, float, float, int]:
    """Optimise R for `min ||grad_W CE(f(clamp(x+R)), y) - target||^2 + lam ||R||^2` with L-BFGS.

    `target` None means a zero gradient. Returns (clamped inputs, gradient gap, ||R||^2, objective evaluations).
    The model's buffers (e.g. BatchNorm statistics) are restored afterwards: only the real step may move them.
    """
    params = trainable(model)
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    noise = torch.zeros_like(x, requires_grad=True)
    optimizer = torch.optim.LBFGS([noise], max_iter=iterations, tolerance_grad=tolerance_grad, history_size=100)
    evaluations = 0
    model.train()

    def objective(create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        loss = F.cross_entropy(model(torch.clamp(x + noise, 0.0, 1.0)), y)
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        if target is None:
            gap = sum((g * g).sum() for g in grads)
        else:
            gap = sum(((g - t) ** 2).sum() for g, t in zip(grads, target))
        return gap, (noise * noise).sum()

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        gap, norm = objective(True)
        total = gap + lam * norm
        total.backward()
        return total.detach()

    for _ in range(rounds):
        optimizer.step(closure)
        if not torch.isfinite(noise).all():
            break
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
    if not torch.isfinite(noise).all():
        return x.detach().clone(), math.inf, math.inf, evaluations
    gap, norm = objective(False)
    evaluations += 1
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
    inputs = torch.clamp(x + noise.detach(), 0.0, 1.0)
    return inputs, float(gap.detach()), float(norm.detach()), evaluations


@dataclass(frozen=True, kw_only=True)
class ZhangSpoof(ProofSpoof):
    """Shared machinery of Attacks I-III; the subclasses fix the target and the reference settings.

    Arguments (besides `ProofSpoof`'s):
        lam (float): weight of ||R||^2 in the objective.
        iterations (int): L-BFGS iterations per round (torch.optim.LBFGS max_iter).
        rounds (int): L-BFGS rounds (calls of `step`).
        tolerance_grad (float): L-BFGS first-order tolerance.
        gradient_threshold (float): gd, the largest accepted ||grad - g*||^2.
        noise_threshold (float): nd, the largest accepted ||R||^2.
        retries (int): tries per crafted batch, each on a fresh random real batch.
    """

    name: ClassVar[str] = "zhang"
    zero_target: ClassVar[bool] = False

    lam: float = 1.0
    iterations: int = 10
    rounds: int = 1
    tolerance_grad: float = 1e-7
    gradient_threshold: float = 30.0
    noise_threshold: float = 30.0
    retries: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations < 1 or self.rounds < 1 or self.retries < 1:
            raise ModeldeedError(f"{self.name}: iterations, rounds and retries must be >= 1")
        if self.lam < 0:
            raise ModeldeedError(f"{self.name}: lam must be >= 0, got {self.lam}")

    # -- what differs between the attacks
    def checkpoint_momentum(
        self, context: SpoofContext, model: nn.Module, start: int, end: int, lr: float
    ) -> dict[str, torch.Tensor]:
        return zero_momentum(model)

    def step_target(
        self,
        context: SpoofContext,
        model: nn.Module,
        start_state: list[torch.Tensor],
        end_state: list[torch.Tensor],
        j: int,
        steps: int,
    ) -> list[torch.Tensor]:
        raise NotImplementedError

    def slices(self, steps: int) -> list[range]:
        """How the interval's steps are grouped into optimisation problems (one per step by default)."""
        return [range(j, j + 1) for j in range(steps)]

    # -- the loop shared by all three
    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config, cost = context.config, context.cost
        total = config.epochs * config.steps_per_epoch(len(context.data))
        marks = checkpoint_steps(total, context.k)
        model = context.fresh_model()
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        bar = progress_bar(total, self.name, context.progress)
        gaps: list[float] = []
        noises: list[float] = []
        self_check: list[dict[str, float]] = []
        try:
            for start, end in zip(marks[:-1], marks[1:]):
                start_state = context.anchor(start)
                end_state = context.anchor(end)
                model.load_state_dict(start_state)
                optimizer = make_optimizer(model.parameters(), config)
                lr = config.lr_at(start // config.steps_per_epoch(len(context.data)))
                buffers = self.checkpoint_momentum(context, model, start, end, lr)
                load_momentum(optimizer, model, buffers)
                trajectory.checkpoints.append(SpoofCheckpoint(start, start_state, buffers))
                start_params = [start_state[n] for n in names]
                end_params = [end_state[n] for n in names]
                steps = end - start
                for group in self.slices(steps):
                    crafted = self.craft(context, model, optimizer, start_params, end_params, start, group, steps)
                    for j, batch in zip(group, crafted):
                        step_lr = config.lr_at((start + j) // config.steps_per_epoch(len(context.data)))
                        step = split_unmodified(context, batch, step_lr)
                        trajectory.steps.append(step)
                        gaps.append(batch.gradient_gap)
                        noises.append(batch.noise)
                        inputs, labels = step.batch(context.data)
                        context.train_step(
                            model, optimizer, inputs.to(context.device), labels.to(context.device), step_lr
                        )
                        if bar is not None:
                            bar.update(1)
                self_check.append(distances(flat_parameters(model), flat_state(model, end_state)))
        finally:
            if bar is not None:
                bar.close()
        trajectory.checkpoints.append(SpoofCheckpoint(total, context.anchor(total), zero_momentum(model)))
        context.details.update(
            {
                "gradient_gap": summary(gaps),
                "noise": summary(noises),
                "self_check": {m: max(e[m] for e in self_check) for m in self_check[0]} if self_check else {},
                "intervals": len(marks) - 1,
            }
        )
        log.info(
            "%s: %d crafted batches, %d retries, %d over the thresholds",
            self.name,
            cost.crafted_batches,
            cost.retries,
            cost.batches_over_threshold,
        )

    def craft(
        self,
        context: SpoofContext,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        start_params: list[torch.Tensor],
        end_params: list[torch.Tensor],
        start: int,
        group: range,
        steps: int,
    ) -> list[Crafted]:
        """Craft the batches of the steps in `group` (one optimisation problem); return one per step."""
        config, cost = context.config, context.cost
        base = [context.step_indices(start + j) for j in group]
        sizes = [len(b) for b in base]
        if self.zero_target:
            target = None
        else:
            wanted = self.step_target(context, model, start_params, end_params, group[0], steps)
            lr = config.lr_at((start + group[0]) // config.steps_per_epoch(len(context.data)))
            target = needed_gradient(model, optimizer, wanted, lr)
        best: tuple[float, torch.Tensor, torch.Tensor, np.ndarray, float, float] | None = None
        accepted = False
        for attempt in range(self.retries):
            indices = (
                np.concatenate(base)
                if attempt == 0
                else context.rng.choice(len(context.data), size=sum(sizes), replace=sum(sizes) > len(context.data))
            )
            x, y = context.batch(indices)
            inputs, gap, noise, evaluations = craft_noise(
                model,
                x,
                y,
                target,
                lam=self.lam,
                iterations=self.iterations,
                rounds=self.rounds,
                tolerance_grad=self.tolerance_grad,
            )
            cost.objective_evaluations += evaluations
            cost.gradient_evaluations += 2.0 * evaluations * len(y) / config.batch_size
            if attempt:
                cost.retries += 1
            score = gap + self.lam * noise
            if best is None or score < best[0]:
                best = (score, inputs, y, indices, gap, noise)
            if gap < self.gradient_threshold and noise < self.noise_threshold:
                accepted = True
                break
        assert best is not None
        _, inputs, y, indices, gap, noise = best
        cost.crafted_batches += len(group)
        if not accepted:
            cost.batches_over_threshold += len(group)
        out = []
        offset = 0
        for size in sizes:
            part = slice(offset, offset + size)
            out.append(
                Crafted(inputs[part].detach(), y[part].detach(), np.asarray(indices[part]), gap, noise, accepted)
            )
            offset += size
        return out


def split_unmodified(context: SpoofContext, batch: Crafted, lr: float) -> SpoofStep:
    """The step as the proof stores it: samples the noise left unchanged by dataset index, first; the
    modified ones after them, kept as exact tensors. The real step is taken on this very order."""
    inputs, labels = batch.inputs.detach().cpu(), batch.labels.detach().cpu()
    index = torch.from_numpy(np.asarray(batch.indices, dtype=np.int64))
    same = (inputs == context.data.x[index]).flatten(1).all(1) & (labels == context.data.y[index])
    kept = np.asarray(batch.indices, dtype=np.int64)[same.numpy()]
    changed = ~same
    if not bool(changed.any()):
        return SpoofStep(kept, lr)
    return SpoofStep(kept, lr, inputs[changed].clone(), labels[changed].clone())


def summary(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {}
    return {"mean": float(np.mean(finite)), "max": float(np.max(finite)), "min": float(np.min(finite))}


@dataclass(frozen=True, kw_only=True)
class ZhangAttack1(ZhangSpoof):
    """Attack I: every crafted step aims at the next point of the straight line (see the module docstring)."""

    name: ClassVar[str] = "zhang1"

    lam: float = 1.0
    iterations: int = 100
    rounds: int = 10
    gradient_threshold: float = 500.0
    noise_threshold: float = 500.0
    retries: int = 1

    def checkpoint_momentum(
        self, context: SpoofContext, model: nn.Module, start: int, end: int, lr: float
    ) -> dict[str, torch.Tensor]:
        if not context.config.momentum:
            return zero_momentum(model)
        a, b = context.anchor(start), context.anchor(end)
        steps = max(end - start, 1)
        return {n: -(b[n] - a[n]) / (steps * lr) for n, p in model.named_parameters() if p.requires_grad}

    def step_target(
        self,
        context: SpoofContext,
        model: nn.Module,
        start_state: list[torch.Tensor],
        end_state: list[torch.Tensor],
        j: int,
        steps: int,
    ) -> list[torch.Tensor]:
        fraction = (j + 1) / steps
        return [a + fraction * (b - a) for a, b in zip(start_state, end_state)]


@dataclass(frozen=True, kw_only=True)
class ZhangAttack2(ZhangSpoof):
    """Attack II: every crafted step cancels the drift from the interval's start."""

    name: ClassVar[str] = "zhang2"

    def step_target(
        self,
        context: SpoofContext,
        model: nn.Module,
        start_state: list[torch.Tensor],
        end_state: list[torch.Tensor],
        j: int,
        steps: int,
    ) -> list[torch.Tensor]:
        return start_state


@dataclass(frozen=True, kw_only=True)
class ZhangAttack3(ZhangSpoof):
    """Attack III: a vanishing gradient on one big batch per interval, sliced into the interval's steps.

    Extra argument:
        slices (int): optimisation problems per interval (the reference's `cut`); 1 = one big batch. Default: 1.
    """

    name: ClassVar[str] = "zhang3"
    zero_target: ClassVar[bool] = True

    lam: float = 0.1
    iterations: int = 10
    rounds: int = 1
    tolerance_grad: float = 0.1
    gradient_threshold: float = 15.0
    noise_threshold: float = 20.0
    retries: int = 30
    slices_per_interval: int = 1

    def slices(self, steps: int) -> list[range]:
        count = max(1, min(self.slices_per_interval, steps))
        bounds = [round(i * steps / count) for i in range(count + 1)]
        return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


ZHANG_ATTACKS: dict[str, type[ZhangSpoof]] = {"zhang1": ZhangAttack1, "zhang2": ZhangAttack2, "zhang3": ZhangAttack3}
