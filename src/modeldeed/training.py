"""The one training loop. Marking, proof-of-learning recording and attacks plug in through hooks.

Everything a step depends on is a pure function of the config and the step number: the batch order
(a seeded permutation per epoch), the augmentation seed, the learning rate, and the global RNG that layers
such as dropout draw from (seeded from the config's seed when a run starts, and private to the run). So any
step can be replayed exactly from a checkpoint, which is what a proof-of-learning verifier does with
`sgd_step`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, augment
from .errors import ModeldeedError

log = logging.getLogger(__name__)


# Limits on training settings. They are far above any run this package is for, and low enough that the
# arithmetic derived from them (steps = epochs x batches, seeds fed to NumPy and PyTorch, lr x gamma^k) stays
# exact and finite. A proof or model.json that states settings outside them is refused before anything runs.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
MAX_MILESTONES = 1_000
MAX_SEED = 2**64 - 1  # numpy's SeedSequence and torch.manual_seed both take [0, 2**64)
MAX_LR = 1e6
MAX_WEIGHT_DECAY = 1e6


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_problem(name: str, value: Any, low: int, high: int) -> str | None:
    if not _is_int(value):
        return f"{name} must be an integer, got {value!r:.40}"
    if not low <= value <= high:
        return f"{name} must lie in [{low}, {high}], got {value}"
    return None


def _float_problem(
    name: str, value: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> str | None:
    if not _is_number(value):
        return f"{name} must be a number, got {value!r:.40}"
    try:
        number = float(value)
    except OverflowError:
        return f"{name} must be a finite number, got an integer of {value.bit_length()} bits"
    if not math.isfinite(number):
        return f"{name} must be a finite number, got {number}"
    below = number <= low if open_low else number < low
    above = number >= high if open_high else number > high
    if below or above:
        return (
            f"{name} must lie in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}, got {number:g}"
        )
    return None


def config_problems(config: TrainConfig) -> list[str]:
    """Every range and type problem of a TrainConfig, as short phrases (empty if it is valid).

    The schedule is checked as it will be used: lr x gamma^k for every k up to the number of milestones must be
    a finite float > 0, so that no epoch trains with an infinite, NaN or zero learning rate.
    """
    checks = [
        _int_problem("epochs", config.epochs, 0, MAX_EPOCHS),
        _int_problem("batch size", config.batch_size, 1, MAX_BATCH_SIZE),
        _float_problem("learning rate", config.lr, 0.0, MAX_LR, open_low=True),
        _float_problem("momentum", config.momentum, 0.0, 1.0, open_high=True),
        _float_problem("weight decay", config.weight_decay, 0.0, MAX_WEIGHT_DECAY),
        _float_problem("lr gamma", config.lr_gamma, 0.0, MAX_LR, open_low=True),
        _int_problem("seed", config.seed, 0, MAX_SEED),
    ]
    problems = [p for p in checks if p]
    if not isinstance(config.augment, bool) or not isinstance(config.deterministic, bool):
        problems.append("augment and deterministic must be true or false")
    if not isinstance(config.device, str) or not (
        config.device in ("cpu", "cuda") or (config.device.startswith("cuda:") and config.device[5:].isdigit())
    ):
        problems.append(f"device must be cpu, cuda or cuda:N, got {config.device!r:.40}")
    milestones = config.lr_milestones
    if not isinstance(milestones, (tuple, list)) or len(milestones) > MAX_MILESTONES:
        problems.append(f"lr milestones must be a list of at most {MAX_MILESTONES} epochs")
    else:
        bad = [m for m in milestones if _int_problem("milestone", m, 0, MAX_EPOCHS)]
        if bad:
            problems.append(f"lr milestones must be epochs in [0, {MAX_EPOCHS}], got {bad[0]!r:.40}")
        elif not problems:
            lr = float(config.lr)
            for k in range(1, len(set(milestones)) + 1):
                lr *= float(config.lr_gamma)
                if not (math.isfinite(lr) and lr > 0):
                    problems.append(
                        f"the schedule reaches learning rate {lr:g} after {k} milestone(s) "
                        f"(lr {config.lr:g} x gamma {config.lr_gamma:g}^{k}): it must stay finite and > 0"
                    )
                    break
    return problems


@dataclass(frozen=True)
class TrainConfig:
    """SGD with momentum, weight decay and a step schedule, as in the papers' training runs."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = ()  # epochs at whose start the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    seed: int = 0  # batch order and augmentation
    augment: bool = False
    device: str = "cpu"
    deterministic: bool = True

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ModeldeedError("training settings: " + "; ".join(problems))
        object.__setattr__(self, "lr_milestones", tuple(sorted(self.lr_milestones)))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))
        object.__setattr__(self, "lr_gamma", float(self.lr_gamma))

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.lr_gamma ** sum(1 for m in self.lr_milestones if epoch >= m)

    def steps_per_epoch(self, n: int) -> int:
        return -(-n // self.batch_size)

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["lr_milestones"] = list(self.lr_milestones)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TrainConfig:
        if not isinstance(doc, dict):
            raise ModeldeedError(f"training settings must be a JSON object, got {type(doc).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - known
        if unknown:
            raise ModeldeedError(f"unknown training settings: {', '.join(sorted(unknown))}")
        values = dict(doc)
        if isinstance(values.get("lr_milestones"), list):
            values["lr_milestones"] = tuple(values["lr_milestones"])
        return cls(**values)


@dataclass
class Batch:
    """One step's training data; hooks may replace inputs/labels (e.g. append trigger images)."""

    step: int
    epoch: int
    indices: np.ndarray
    inputs: torch.Tensor
    labels: torch.Tensor
    lr: float
    augment_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainState:
    """What hooks see: the live model and optimizer, and where the loop is."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    data: Dataset
    step: int  # steps completed so far
    total_steps: int
    epoch: int = 0


class Hook:
    """Override what you need. Hooks run in the order given to `train`."""

    def on_train_start(self, state: TrainState) -> None: ...

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        return batch

    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, state: TrainState, epoch: int) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    steps: int
    epochs: int
    seconds: float
    epoch_losses: tuple[float, ...]


def configure_determinism(enabled: bool) -> None:
    """Deterministic kernels where PyTorch has them (warn, don't fail, where it has none).

    On CUDA, cuBLAS is deterministic only with a fixed workspace (CUBLAS_WORKSPACE_CONFIG, read when its handle is
    made): it is set here unless the user set it, before any CUDA work of the run."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of the training set for one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(config: TrainConfig, n: int, epoch: int) -> list[np.ndarray]:
    order = epoch_order(config.seed, epoch, n)
    return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]


def batch_indices(config: TrainConfig, n: int, step: int) -> np.ndarray:
    """The dataset indices of global step `step` (0-based)."""
    per_epoch = config.steps_per_epoch(n)
    epoch, within = divmod(step, per_epoch)
    order = epoch_order(config.seed, epoch, n)
    return order[within * config.batch_size : (within + 1) * config.batch_size]


def augment_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step, 0xA5]).generate_state(1, np.uint64)[0] >> 1)


def rng_seed(seed: int) -> int:
    """The seed of the global torch RNG when a run starts at step 0 (dropout and the like draw from it)."""
    return int(np.random.SeedSequence([seed, 0x52A6]).generate_state(1, np.uint64)[0] >> 1)


def seed_run_rng(config: TrainConfig) -> None:
    """Put the global RNG where a run of `config` starts it, so the RNG state at W_0 follows from the seed."""
    seed = rng_seed(config.seed)
    torch.random.default_generator.manual_seed(seed)
    for index in rng_devices(config):
        torch.cuda.default_generators[index].manual_seed(seed)


def rng_devices(config: TrainConfig) -> list[int]:
    """The CUDA devices whose RNG a run on `config.device` uses (none on the CPU)."""
    if not config.device.startswith("cuda") or not torch.cuda.is_available():
        return []
    return [torch.device(config.device).index or 0]


def make_batch(
    data: Dataset,
    config: TrainConfig,
    step: int,
    indices: np.ndarray,
    *,
    device: str = "cpu",
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> Batch:
    """Gather (and augment, with its recorded seed) the samples of one step, exactly as training saw them."""
    n_per_epoch = config.steps_per_epoch(len(data))
    epoch = step // n_per_epoch
    index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    xs = x if x is not None else data.x
    ys = y if y is not None else data.y
    inputs = xs[index.to(xs.device)].to(device)
    labels = ys[index.to(ys.device)].to(device)
    seed = None
    if config.augment:
        seed = augment_seed(config.seed, step)
        inputs = augment(inputs, seed)
    return Batch(step, epoch, np.asarray(indices), inputs, labels, config.lr_at(epoch), seed)


def make_optimizer(parameters: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.SGD:
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ModeldeedError("no trainable parameters: every parameter has requires_grad=False")
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def sgd_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor, lr: float
) -> torch.Tensor:
    """One update. Training and every replay of it (PoL verification, spoofing) go through here."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(inputs), labels)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    hooks: Sequence[Hook] = (),
    parameters: Iterable[nn.Parameter] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    start_step: int = 0,
    rng_state: torch.Tensor | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `model` in place on `data` for `config.epochs` epochs, from global step `start_step`.

    `parameters` limits what is trained (e.g. only the last layer); `optimizer_state`, `start_step` and
    `rng_state` (the CPU RNG state of the checkpoint) resume an interrupted run exactly where it stopped.
    The run draws from its own copy of the global RNG, seeded from `config.seed` at step 0, and leaves the
    caller's RNG as it was.
    """
    with torch.random.fork_rng(devices=rng_devices(config)):
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        elif start_step == 0:
            seed_run_rng(config)
        return _train(model, data, config, hooks, parameters, optimizer_state, start_step, progress)


def _train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    hooks: Sequence[Hook],
    parameters: Iterable[nn.Parameter] | None,
    optimizer_state: dict[str, Any] | None,
    start_step: int,
    progress: bool,
) -> TrainResult:
    if len(data) == 0:
        raise ModeldeedError(f"{data.name}: cannot train on an empty dataset")
    configure_determinism(config.deterministic)
    model.to(config.device)
    check_model_fits(model, data, config.device)
    optimizer = make_optimizer(parameters if parameters is not None else model.parameters(), config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    per_epoch = config.steps_per_epoch(len(data))
    total = per_epoch * config.epochs
    if not 0 <= start_step <= total:
        raise ModeldeedError(f"start step {start_step} outside 0..{total}")
    # Small datasets live on the device; large ones are gathered on the CPU per step.
    x, y = data.x, data.y
    if config.device != "cpu" and data.x.numel() * 4 < 2**31:
        x, y = data.x.to(config.device), data.y.to(config.device)
    state = TrainState(model, optimizer, config, data, start_step, total, start_step // per_epoch)
    for hook in hooks:
        hook.on_train_start(state)
    bar = progress_bar(total, start_step, enabled=progress)
    started = time.perf_counter()
    epoch_losses: list[float] = []
    try:
        for epoch in range(start_step // per_epoch, config.epochs):
            state.epoch = epoch
            loss_sum = torch.zeros((), device=config.device)
            first = max(start_step - epoch * per_epoch, 0)
            for within, indices in enumerate(epoch_batches(config, len(data), epoch)[first:], start=first):
                batch = make_batch(data, config, epoch * per_epoch + within, indices, device=config.device, x=x, y=y)
                for hook in hooks:
                    batch = hook.on_batch(state, batch)
                loss = sgd_step(model, optimizer, batch.inputs, batch.labels, batch.lr)
                state.step += 1
                loss_sum += loss
                for hook in hooks:
                    hook.on_step_end(state, batch, loss)
                if bar is not None:
                    bar.update(1)
                    if within % 20 == 0:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            epoch_losses.append(float(loss_sum) / max(per_epoch - first, 1))
            log.info("epoch %d/%d: mean loss %.4f", epoch + 1, config.epochs, epoch_losses[-1])
            for hook in hooks:
                hook.on_epoch_end(state, epoch)
    finally:
        if bar is not None:
            bar.close()
    for hook in hooks:
        hook.on_train_end(state)
    return TrainResult(state.step, config.epochs, time.perf_counter() - started, tuple(epoch_losses))


@torch.no_grad()
def check_model_fits(model: nn.Module, data: Dataset, device: str = "cpu") -> None:
    """Before training, not after: the model must map a batch of `data` to one score per class.

    A user model with the wrong number of outputs would otherwise fail deep inside the loss (too few) or, worse,
    train silently on classes the data does not have (too many). One forward pass of two samples in eval mode
    (no batch-norm statistics change, no randomness drawn) finds out.
    """
    x = data.x[:2].to(device)
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModeldeedError(
            f"the model cannot take {data.name}'s inputs (shape {list(x.shape[1:])}): {first}"
        ) from None
    finally:
        model.train(was_training)
    shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), data.num_classes):
        raise ModeldeedError(
            f"the model's output for {len(x)} {data.name} inputs has shape {shape}; training needs "
            f"[{len(x)}, {data.num_classes}]: one score for each of the data's {data.num_classes} classes"
        )


def progress_bar(total: int, initial: int, *, enabled: bool) -> Any:
    """A tqdm bar with ETA on stderr; silent when disabled or when stderr is not a terminal."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # leave=None: kept on screen when it is the only bar, cleared when it runs beneath another (an attack suite's)
    return tqdm(total=total, initial=initial, unit="step", desc="train", disable=None, dynamic_ncols=True, leave=None)


def iterate_chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, device: str | None = None) -> torch.Tensor:
    """Predicted class of every input, in eval mode, on the model's device."""
    device = device or next(model.parameters()).device.type
    was_training = model.training
    model.eval()
    try:
        parts = [model(x[s].to(device)).argmax(1).cpu() for s in iterate_chunks(len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)


def accuracy(model: nn.Module, data: Dataset, batch_size: int = 1000) -> float:
    if len(data) == 0:
        raise ModeldeedError(f"{data.name}: cannot evaluate on an empty dataset")
    return float((predict(model, data.x, batch_size) == data.y).float().mean())
