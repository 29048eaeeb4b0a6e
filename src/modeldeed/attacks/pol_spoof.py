"""Spoofing proof-of-learning: what every spoof shares (forged W0, interpolated checkpoints, cost, trajectory).

Threat model (Jia et al. 2021, as attacked by Zhang et al. 2022 and Fang et al. 2023): the adversary holds the
final weights W_T, the architecture and the training data, may modify the data, and declares the
hyper-parameters of the proof it forges. It wants a proof that the verifier accepts, for less work than
training. Every spoof here:

1. forges W0 by the sort trick (`sorted_initialisation`): values drawn from the declared initialisation,
   placed in the rank order of W_T's entries, so a Kolmogorov-Smirnov test sees an honest draw while W0 lies
   close to W_T;
2. places the checkpoints on the straight line from W0 to W_T (`interpolate_state`), close enough together
   that consecutive ones are within a margin of the verifier's delta (`plan_epochs`);
3. fills each interval of k steps with batches (`SpoofStep`): crafted ones (Zhang's attacks, stored inside
   the proof as exact tensors) or real ones (Fang's attacks), and runs the real training step (`sgd_step`,
   momentum and weight decay included) wherever it needs the weights the verifier's replay will reach.

The attacks never judge themselves: `pol_spoof_report.spoof_and_verify` hands the written proof to the real
verifiers. `SpoofCost` counts gradient evaluations and wall time; `honest_training_cost` measures the same for
training the model honestly, so the ratio can be reported.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, final

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelSpec, build_model
from ..pol.distances import METRICS, distances
from ..pol.initialisation import ks_tests
from ..pol.policy import DEFAULT_DELTA
from ..training import TrainConfig, batch_indices, make_batch, make_optimizer, sgd_step, train

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- distances


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """The trainable parameters, concatenated in registration order (what PoL distances are taken over)."""
    return torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in model.parameters() if p.requires_grad])


def reference_distance(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The verifier's no-training d_ref estimate at `state`: distance to the same weights shuffled within each
    tensor (what `pol.intervals.estimate_reference_distance` computes), used to turn normalised delta into
    absolute thresholds when no calibrated d_ref is given."""
    generator = torch.Generator().manual_seed(0)
    vector = flat_state(model, state)
    parts = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            t = state[name].detach().to("cpu", torch.float64).reshape(-1)
            parts.append(t[torch.randperm(t.numel(), generator=generator)])
    return distances(vector, torch.cat(parts))


# ------------------------------------------------------------------------------------------------- cost


@dataclass
class SpoofCost:
    """Work done by a spoof (or by honest training), in the unit both share.

    One gradient evaluation = one forward and backward pass over a batch of the declared batch size. A
    training step costs 1. One L-BFGS evaluation of Zhang's objective costs 2 per batch of that size: the
    gradient with respect to the weights (built with create_graph=True) and the backward pass through it to
    the noise. A k·b "big batch" (Attack III) counts k times as much.
    """

    gradient_evaluations: float = 0.0
    training_steps: int = 0
    objective_evaluations: int = 0
    crafted_batches: int = 0
    retries: int = 0
    batches_over_threshold: int = 0
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cost_ratio(spoof: SpoofCost, honest: SpoofCost) -> dict[str, float | None]:
    """Spoof cost / honest cost in gradient evaluations and in wall time (None where the honest cost is 0)."""
    grads = spoof.gradient_evaluations / honest.gradient_evaluations if honest.gradient_evaluations else None
    wall = spoof.wall_seconds / honest.wall_seconds if honest.wall_seconds else None
    return {"gradient_evaluations": grads, "wall_time": wall}


def honest_training_cost(
    spec: ModelSpec, data: Dataset, config: TrainConfig, *, measure_steps: int | None = None, trust_code: bool = False
) -> SpoofCost:
    """What training `spec` on `data` with `config` costs: epochs × steps-per-epoch gradient evaluations.

    The wall time is measured by training for real; with `measure_steps`, only that many steps are timed and
    the time is extrapolated to the whole run (for models too large to retrain just to measure).
    """
    total = config.epochs * config.steps_per_epoch(len(data))
    model = build_model(spec, seed=config.seed, trust_code=trust_code)
    if measure_steps is None or measure_steps >= total:
        result = train(model, data, config, progress=False)
        return SpoofCost(gradient_evaluations=float(total), training_steps=total, wall_seconds=result.seconds)
    model.to(config.device)
    optimizer = make_optimizer(model.parameters(), config)
    started = time.perf_counter()
    for step in range(measure_steps):
        batch = make_batch(data, config, step, batch_indices(config, len(data), step), device=config.device)
        sgd_step(model, optimizer, batch.inputs, batch.labels, batch.lr)
    seconds = (time.perf_counter() - started) * total / max(measure_steps, 1)
    return SpoofCost(gradient_evaluations=float(total), training_steps=total, wall_seconds=seconds)


# --------------------------------------------------------------------------------------------- forging W0


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def sorted_initialisation(
    final: nn.Module, spec: ModelSpec, *, seed: int, alpha: float = 0.01, max_draws: int = 20, trust_code: bool = False
) -> tuple[dict[str, torch.Tensor], int]:
    """Zhang et al.'s W0: a fresh draw from the declared initialisation, sorted into W_T's rank order.

    Every floating-point tensor of a fresh `build_model(spec)` is sorted and its values placed so that the
    smallest goes where W_T has its smallest entry, and so on. The multiset of values is exactly that of the
    fresh draw, so a per-layer Kolmogorov-Smirnov test cannot tell it apart; a draw whose own KS p-value is
    below `alpha` for some weight tensor is redrawn (up to `max_draws` times). Returns (state, draws used).
    """
    target = final.state_dict()
    for draw in range(1, max_draws + 1):
        fresh = build_model(spec, seed=seed * 1000 + draw, trust_code=trust_code)
        tests = ks_tests(fresh, fresh.state_dict(), "pytorch-default")
        if min((t.p_value for t in tests), default=1.0) >= alpha or draw == max_draws:
            break
    state = {}
    for name, value in fresh.state_dict().items():
        wt = target[name]
        if not value.is_floating_point() or value.numel() <= 1:
            state[name] = value.detach().clone()
            continue
        placed = torch.empty_like(value).reshape(-1)
        placed[wt.detach().reshape(-1).argsort(stable=True)] = value.detach().reshape(-1).sort(stable=True).values
        state[name] = placed.reshape(value.shape)
    return state, draw


def interpolate_state(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], fraction: float
) -> dict[str, torch.Tensor]:
    """a + fraction·(b - a) for floating tensors (b itself at fraction 1); integer buffers come from the nearer end."""
    if fraction >= 1.0:
        return {name: t.detach().clone() for name, t in b.items()}
    out = {}
    for name, ta in a.items():
        tb = b[name]
        if ta.is_floating_point():
            out[name] = (ta.to(torch.float64) + fraction * (tb.to(torch.float64) - ta.to(torch.float64))).to(ta.dtype)
        else:
            out[name] = (ta if fraction < 0.5 else tb).detach().clone()
    return out


def flat_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """`flat_parameters` of the model with `state` loaded, without touching the model."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    return torch.cat([state[n].detach().reshape(-1).to(torch.float64) for n in names])


# ------------------------------------------------------------------------------------------- trajectory


@dataclass
class SpoofStep:
    """One step of the forged proof: the batch is data[indices] followed by `inputs` (modified samples kept
    inside the proof, exact float32), the same layout as the proof format's indices + stored samples."""

    indices: np.ndarray
    lr: float
    inputs: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    @property
    def modified(self) -> bool:
        return self.inputs is not None and len(self.inputs) > 0

    def batch(self, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact batch a replay feeds to `sgd_step`."""
        index = torch.from_numpy(np.asarray(self.indices, dtype=np.int64))
        x, y = data.x[index], data.y[index]
        if self.modified:
            assert self.inputs is not None and self.labels is not None
            x = torch.cat([x, self.inputs.to(x.device)])
            y = torch.cat([y, self.labels.to(y.device)])
        return x, y


@dataclass
class SpoofCheckpoint:
    """Weights (every state_dict entry) and the momentum buffer of every trainable parameter, by name."""

    step: int
    model_state: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor]


@dataclass
class SpoofedTrajectory:
    """A forged proof before it is written: declared hyper-parameters, every step's batch, checkpoints every k."""

    spec: ModelSpec
    config: TrainConfig
    k: int
    dataset: Dataset
    template: nn.Module  # the architecture (a private CPU copy), for building checkpoint tensors
    steps: list[SpoofStep] = field(default_factory=list)
    checkpoints: list[SpoofCheckpoint] = field(default_factory=list)
    free_field: str | None = None  # what the proof's free-form environment.platform field says (None: the truth)
    # runs on the written proof directory with the result's details (to add to); returns the final proof id
    finish: Callable[[Path, dict[str, Any]], str] | None = None

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    @property
    def modified_samples(self) -> int:
        return sum(len(s.inputs) for s in self.steps if s.inputs is not None)

    @property
    def modified_steps(self) -> int:
        return sum(1 for s in self.steps if s.modified)


@dataclass(frozen=True)
class SpoofResult:
    """A spoof's output: the forged trajectory, what it cost, and the attacker's own look at it.

    `details["self_check"]` holds the distances the attacker measured between where its steps landed and the
    checkpoint it recorded next; they are the attacker's estimate, not a verdict.
    """

    method: str
    parameters: dict[str, Any]
    trajectory: SpoofedTrajectory
    cost: SpoofCost
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parameters": self.parameters,
            "cost": self.cost.to_json(),
            "steps": self.trajectory.total_steps,
            "k": self.trajectory.k,
            "modified_samples": self.trajectory.modified_samples,
            "modified_steps": self.trajectory.modified_steps,
            "declared_training": self.trajectory.config.to_json(),
            "details": self.details,
        }


# ------------------------------------------------------------------------------------------------ planning


def momentum_buffers(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, torch.Tensor]:
    """The optimizer's momentum buffer of every trainable parameter, by name (zeros where none exists yet)."""
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        out[name] = torch.zeros_like(p.detach()) if buf is None else buf.detach().clone()
    return out


def load_momentum(optimizer: torch.optim.Optimizer, model: nn.Module, buffers: Mapping[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        if p.requires_grad and name in buffers:
            optimizer.state[p]["momentum_buffer"] = buffers[name].detach().clone().to(p.device)


def zero_momentum(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: torch.zeros_like(p.detach()) for name, p in model.named_parameters() if p.requires_grad}


def checkpoint_steps(total: int, k: int) -> list[int]:
    """0, k, 2k, ... and the last step (a checkpoint before every k-th step, plus the final weights)."""
    steps = list(range(0, total, k))
    return steps + [total] if not steps or steps[-1] != total else steps


def absolute_thresholds(
    model: nn.Module,
    states: list[Mapping[str, torch.Tensor]],
    delta: Mapping[str, float],
    d_ref: Mapping[str, float] | None,
) -> dict[str, float]:
    """delta (normalised, as `VerificationPolicy` takes it) times d_ref: calibrated, or the verifier's own
    estimate at the given states (the smallest, to be safe)."""
    if d_ref is not None:
        return {m: v * d_ref[m] for m, v in delta.items()}
    estimates = [reference_distance(model, s) for s in states]
    return {m: v * min(e[m] for e in estimates) for m, v in delta.items()}


def plan_epochs(
    model: nn.Module,
    w0: Mapping[str, torch.Tensor],
    wt: Mapping[str, torch.Tensor],
    thresholds: Mapping[str, float],
    *,
    margin: float,
    k: int,
    steps_per_epoch: int,
    max_epochs: int = 1 << 16,
) -> int:
    """The fewest epochs whose straight-line checkpoints are within margin·threshold of each other in every metric.

    Consecutive interpolated checkpoints are 1/n of d(W0, W_T) apart in l1, l2 and linf; the cosine distance
    shrinks about as 1/n², so it is checked on the actual first interval.
    """
    a, b = flat_state(model, w0), flat_state(model, wt)
    full = distances(a, b)
    intervals = 1
    for metric in ("l1", "l2", "linf"):
        if thresholds.get(metric, 0) > 0:
            intervals = max(intervals, math.ceil(full[metric] / (margin * thresholds[metric])))
    epochs = max(1, math.ceil(intervals * k / steps_per_epoch))
    while epochs <= max_epochs:
        n = math.ceil(epochs * steps_per_epoch / k)
        gaps = distances(a, a + (b - a) / n)
        if all(gaps[m] <= margin * v for m, v in thresholds.items() if v > 0):
            return epochs
        epochs *= 2
    raise ModeldeedError(f"cannot place checkpoints within {margin}·delta of each other in {max_epochs} epochs")


# ------------------------------------------------------------------------------------------------ the base


@dataclass
class SpoofContext:
    """What `run` works with: the claimed model, its forged W0, the declared config and the meter."""

    final: nn.Module
    spec: ModelSpec
    data: Dataset
    config: TrainConfig
    k: int
    w0: dict[str, torch.Tensor]
    wt: dict[str, torch.Tensor]
    thresholds: dict[str, float]  # absolute distances the verifier will allow
    cost: SpoofCost
    rng: np.random.Generator
    device: str
    progress: bool
    details: dict[str, Any] = field(default_factory=dict)

    def fresh_model(self, state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        """A private copy of the architecture holding `state` (W0 by default), on the spoof's device."""
        model = copy.deepcopy(self.final)
        model.load_state_dict(dict(state if state is not None else self.w0))
        return model.to(self.device)

    def anchor(self, step: int) -> dict[str, torch.Tensor]:
        """The straight-line checkpoint for global step `step` (W_T itself at the last step)."""
        total = self.config.epochs * self.config.steps_per_epoch(len(self.data))
        return interpolate_state(self.w0, self.wt, step / total)

    def step_indices(self, step: int) -> np.ndarray:
        return batch_indices(self.config, len(self.data), step)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return self.data.x[index].to(self.device), self.data.y[index].to(self.device)

    def train_step(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor, lr: float
    ) -> None:
        sgd_step(model, optimizer, inputs, labels, lr)
        self.cost.training_steps += 1
        self.cost.gradient_evaluations += len(labels) / self.config.batch_size


@dataclass(frozen=True, kw_only=True)
class ProofSpoof:
    """Base of every proof-of-learning spoof: keyword-only hyper-parameters; the claimed model comes in the call.

    Arguments shared by all spoofs:
        delta (dict): the verifier's normalised thresholds per metric ("l1", "l2", "linf", "cos"), fractions of
            d_ref as `VerificationPolicy` takes them; public, so the adversary knows them.
            Default: `pol.policy.DEFAULT_DELTA`.
        d_ref (dict | None): the calibrated d_ref the verifier uses; None: the verifier's own per-checkpoint
            estimate (computed here at W0 and W_T, the smaller taken). Default: None.
        margin (float): consecutive checkpoints are placed within margin·delta·d_ref. Default: 0.5.
        k (int): checkpoint interval of the forged proof; the verifier does not constrain it, and a short
            interval keeps the drift of each replay within delta. Default: 2.
        epochs (int | None): length of the forged proof in epochs of the declared batch size; None picks the
            fewest that `margin` allows. Default: None.
        batch_size (int | None): declared batch size; None keeps the claimed training config's. Default: None.
        lr (float | None): declared learning rate (constant); None keeps the claimed config's. Default: None.
        seed (int): the declared seed (batch order) and the attacker's randomness. Default: 0.
        w0 (str): "sort" forges W0 by the sort trick (the attacks as published); "seed" starts from the honest
            initialisation of the declared seed, as a spoofer facing a seed-checking verifier must. Default: "sort".
        device (str): where the spoof computes. Default: "cpu".
        progress (bool): show a progress bar. Default: True.

    Call: `spoof(final_model, spec, data, config=claimed_config)` returns a `SpoofResult`; write it with
    `pol_spoof_proof.write_spoof_proof` and verify it with the real verifier.
    """

    name: ClassVar[str] = "spoof"
    plan_length: ClassVar[bool] = True  # pick the epochs from delta (else the claimed config's)

    delta: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DELTA))
    d_ref: Mapping[str, float] | None = None
    margin: float = 0.5
    k: int = 2
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    w0: str = "sort"
    device: str = "cpu"
    progress: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override ProofSpoof.__call__; implement run() instead")

    def __post_init__(self) -> None:
        problems = []
        unknown = set(self.delta) - set(METRICS)
        if unknown:
            problems.append(f"unknown delta metrics {sorted(unknown)}; use {', '.join(METRICS)}")
        if not any(v > 0 for v in self.delta.values()):
            problems.append("delta needs at least one positive threshold")
        if not 0 < self.margin <= 1:
            problems.append(f"margin must lie in (0, 1], got {self.margin}")
        if self.k < 1:
            problems.append(f"k must be >= 1, got {self.k}")
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if self.w0 not in ("sort", "seed"):
            problems.append(f"w0 must be 'sort' or 'seed', got {self.w0!r}")
        if self.d_ref is not None and any(not self.d_ref.get(m, 0) > 0 for m in self.delta):
            problems.append("d_ref must be > 0 for every metric in delta")
        if problems:
            raise ModeldeedError(f"{self.name}: " + "; ".join(problems))

    def parameters(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("device", "progress"):
                continue
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out

    def declared_config(self, claimed: TrainConfig, epochs: int) -> TrainConfig:
        return dataclasses.replace(
            claimed,
            epochs=epochs,
            seed=self.seed,
            lr_milestones=(),
            augment=False,
            device=self.device,
            batch_size=self.batch_size or claimed.batch_size,
            lr=self.lr if self.lr is not None else claimed.lr,
        )

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        """Fill `trajectory.steps` and `trajectory.checkpoints`; count work in `context.cost`."""
        raise NotImplementedError

    @final
    def __call__(
        self, final_model: nn.Module, spec: ModelSpec, data: Dataset, *, config: TrainConfig, trust_code: bool = False
    ) -> SpoofResult:
        """Forge a proof that `final_model` (left unchanged) was trained on `data`, claiming `config`.

        `spec` must build `final_model`'s architecture: W0 is drawn from its initialisation.
        """
        started = time.perf_counter()
        final_model = copy.deepcopy(final_model).to("cpu")
        cost = SpoofCost()
        if self.w0 == "sort":
            w0, draws = sorted_initialisation(final_model, spec, seed=self.seed, trust_code=trust_code)
        else:
            w0, draws = state_of(build_model(spec, seed=self.seed, trust_code=trust_code)), 0
        wt = state_of(final_model)
        thresholds = absolute_thresholds(final_model, [w0, wt], self.delta, self.d_ref)
        probe = self.declared_config(config, 1)
        per_epoch = probe.steps_per_epoch(len(data))
        if self.epochs is not None:
            epochs = self.epochs
        elif self.plan_length:
            epochs = plan_epochs(
                final_model, w0, wt, thresholds, margin=self.margin, k=self.k, steps_per_epoch=per_epoch
            )
        else:
            epochs = config.epochs
        declared = self.declared_config(config, epochs)
        context = SpoofContext(
            final_model,
            spec,
            data,
            declared,
            self.k,
            w0,
            wt,
            thresholds,
            cost,
            np.random.default_rng([self.seed, 0x5B00F]),
            self.device,
            self.progress,
        )
        trajectory = SpoofedTrajectory(spec, declared, self.k, data, copy.deepcopy(final_model))
        d0 = distances(flat_state(final_model, w0), flat_state(final_model, wt))
        log.info(
            "%s: W0 (%s), d(W0, W_T) = %s; %d epochs of %d steps, k = %d",
            self.name,
            self.w0,
            {m: round(v, 4) for m, v in d0.items()},
            epochs,
            per_epoch,
            self.k,
        )
        self.run(context, trajectory)
        cost.wall_seconds = time.perf_counter() - started
        details = {
            "w0": {"method": self.w0, "draws": draws, "distance_to_final": d0},
            "thresholds": thresholds,
            **context.details,
        }
        return SpoofResult(self.name, self.parameters(), trajectory, cost, details)


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=None, dynamic_ncols=True)
