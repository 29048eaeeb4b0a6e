"""Re-executing recorded steps from a stored training state, through the training loop's own `sgd_step`.

A replay rebuilds the architecture, loads the start checkpoint's weights, buffers, optimizer state
(momentum), RNG state and schedule position, then feeds the recorded batches with the recorded learning
rates, and returns the whole training state it ends in, named as a checkpoint names it: the verifier
compares all of it with the next checkpoint. On the same hardware, PyTorch and thread count this is
bit-identical to training; elsewhere it drifts, which is what the tolerance allows for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..data import Dataset
from ..errors import FormatError, ModeldeedError, file_error
from ..models import ModelSpec, build_model, load_state_exactly
from ..training import configure_determinism, make_optimizer, sgd_step
from .loop import LoopRunner, build_optimizer, resolve_step, state_keys
from .proof import ProofHeader, StepRecord
from .state import MOMENTUM, OPTIMIZER_PREFIX, RNG_CPU, RNG_CUDA, model_tensors, training_state
from .store import StoredSamples, batch_digest, batch_tensors

log = logging.getLogger(__name__)

MAX_PARAMETERS = 4_000_000_000  # a bound on what an adversary's architecture arguments can make us allocate


class ReplayMismatch(Exception):
    """A replayed batch does not hash to the recorded digest (the data is not what was trained on)."""


def build_checked_model(spec: ModelSpec, *, trust_code: bool, source: str | Path) -> nn.Module:
    """The proof's architecture, sized on the meta device first so hostile arguments cannot exhaust memory."""
    try:
        with torch.device("meta"):
            probe = build_model(spec, trust_code=trust_code)
        count = sum(t.numel() for t in probe.state_dict().values())
    except ModeldeedError as exc:
        raise file_error(FormatError, source, f"names a model that cannot be built: {exc}") from None
    except (RuntimeError, NotImplementedError):
        count = 0  # a factory that cannot build on the meta device is sized by the real build below
    if count > MAX_PARAMETERS:
        raise file_error(
            FormatError,
            source,
            f"model arguments {spec.arguments} build {count} parameters, more than {MAX_PARAMETERS}",
        )
    try:
        return build_model(spec, trust_code=trust_code)
    except (ModeldeedError, RuntimeError, MemoryError) as exc:
        raise file_error(FormatError, source, f"cannot build model {spec.architecture!r} ({exc})") from None


def optimizer_keys(header: ProofHeader) -> tuple[str, ...]:
    """The per-parameter optimizer state a checkpoint of this proof may hold."""
    return state_keys(header.loop.optimizer) if header.loop is not None else (MOMENTUM,)


def load_training_state(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], header: ProofHeader, source: str | Path, device: str = "cpu"
) -> torch.optim.Optimizer:
    """Load a checkpoint into `model` (exact tensors) and return an optimizer holding its state.

    Only per-parameter state tensors come from the checkpoint (SGD's momentum; Adam's moments and step count);
    the optimizer's hyper-parameters and a user's schedule come from the proof's settings."""
    load_state_exactly(model, {k: v.clone() for k, v in model_tensors(tensors).items()}, source)
    model.to(device)
    named = dict(model.named_parameters())
    trained = header.trained_parameters
    for name in named:
        named[name].requires_grad_(name in trained)
    params = [named[n] for n in trained]
    if header.loop is not None:
        optimizer = build_optimizer(params, header.loop.optimizer)
    else:
        optimizer = make_optimizer(params, header.config)
    allowed = optimizer_keys(header)
    for key, value in tensors.items():
        if not key.startswith(OPTIMIZER_PREFIX):
            continue
        state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition("/")
        if name not in trained or state_key not in allowed:
            raise file_error(
                FormatError, source, f"optimizer state {key!r} is not {'/'.join(allowed)} of a trained parameter"
            )
        param = named[name]
        if state_key == "step":
            if value.shape != () or value.dtype != torch.float32:
                raise file_error(FormatError, source, f"optimizer state {key!r} must be a float32 scalar")
            optimizer.state[param][state_key] = value.clone()  # Adam keeps its step count on the CPU
            continue
        if value.shape != param.shape or value.dtype != param.dtype:
            raise file_error(
                FormatError,
                source,
                f"optimizer state {key!r} is {value.dtype}{tuple(value.shape)}, "
                f"the parameter is {param.dtype}{tuple(param.shape)}",
            )
        optimizer.state[param][state_key] = value.clone().to(device)
    return optimizer


def replay(
    header: ProofHeader,
    start: Mapping[str, torch.Tensor],
    records: Sequence[tuple[int, StepRecord]],
    data: Dataset,
    samples: StoredSamples | None,
    *,
    end_step: int,
    model: nn.Module,
    source: str | Path,
    device: str = "cpu",
    trust_code: bool = False,
) -> dict[str, torch.Tensor]:
    """Replay `records` (global step, record) from the state `start`; return the state at `end_step`.

    A proof of a user's own loop replays through its step function (`pol.loop.LoopRunner`, the object its
    recorder trained through), imported only with `trust_code` unless it is the built-in one.

    Raises ReplayMismatch if a rebuilt batch does not match its recorded hash.
    """
    optimizer = load_training_state(model, start, header, source, device)
    config = header.config
    per_epoch = config.steps_per_epoch(header.dataset.size)
    runner = None
    if header.loop is not None:
        step_function = resolve_step(header.loop.step, trust_code=trust_code, source=source)
        first = records[0][0] if records else end_step
        runner = LoopRunner(header.loop, model, optimizer, step_function, per_epoch).at_step(first)
        for key, value in start.items():  # Adam's bias correction follows from the step, not from the file
            if key.startswith(OPTIMIZER_PREFIX + "step/") and float(value) != float(first):
                raise file_error(FormatError, source, f"{key} counts {float(value):g} optimizer steps, not {first}")
    configure_determinism(config.deterministic)
    cuda = device if device.startswith("cuda") else None
    devices = [torch.device(device).index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices):
        try:
            if RNG_CPU in start:
                torch.set_rng_state(start[RNG_CPU].clone())
            if cuda and RNG_CUDA in start:
                torch.cuda.set_rng_state(start[RNG_CUDA].clone(), cuda)
        except RuntimeError as exc:
            raise file_error(FormatError, source, f"invalid RNG state ({exc})") from None
        for step, record in records:
            inputs, labels = batch_tensors(record, data, samples, device)
            if batch_digest(inputs.cpu(), labels.cpu()) != record.batch_sha256:
                raise ReplayMismatch(f"step {step}: the rebuilt batch does not match its recorded SHA-256")
            if runner is not None:  # the user's step, with the schedule re-derived from the statement
                loss = runner.run_step(inputs, labels)
            else:
                loss = sgd_step(model, optimizer, inputs, labels, record.lr)
            if not math.isfinite(float(loss)):
                log.warning("replay of step %d: loss is %s", step, float(loss))
        next_lr = runner.lr if runner is not None else config.lr_at(end_step // per_epoch)
        return training_state(model, optimizer, header.trained_parameters, end_step, next_lr, cuda_device=cuda)
