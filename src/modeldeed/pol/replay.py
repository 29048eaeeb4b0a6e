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


def load_training_state(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], header: ProofHeader, source: str | Path, device: str = "cpu"
) -> torch.optim.Optimizer:
    """Load a checkpoint into `model` (exact tensors) and return an optimizer holding its state."""
    load_state_exactly(model, {k: v.clone() for k, v in model_tensors(tensors).items()}, source)
    model.to(device)
    named = dict(model.named_parameters())
    trained = header.trained_parameters
    for name in named:
        named[name].requires_grad_(name in trained)
    optimizer = make_optimizer([named[n] for n in trained], header.config)
    for key, value in tensors.items():
        if not key.startswith(OPTIMIZER_PREFIX):
            continue
        state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition("/")
        if name not in trained or state_key != MOMENTUM:
            raise file_error(FormatError, source, f"optimizer state {key!r} is not the momentum of a trained parameter")
        param = named[name]
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
) -> dict[str, torch.Tensor]:
    """Replay `records` (global step, record) from the state `start`; return the state at `end_step`.

    Raises ReplayMismatch if a rebuilt batch does not match its recorded hash.
    """
    optimizer = load_training_state(model, start, header, source, device)
    config = header.config
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
            loss = sgd_step(model, optimizer, inputs, labels, record.lr)
            if not math.isfinite(float(loss)):
                log.warning("replay of step %d: loss is %s", step, float(loss))
        per_epoch = config.steps_per_epoch(header.dataset.size)
        return training_state(
            model, optimizer, header.trained_parameters, end_step, config.lr_at(end_step // per_epoch), cuda_device=cuda
        )
