"""Re-executing recorded steps from a stored checkpoint, through the training loop's own `sgd_step`.

A replay rebuilds the architecture from the proof, loads the checkpoint's weights, buffers, optimizer
state (momentum) and RNG state, then feeds the recorded batches with the recorded learning rates. On
the same hardware and thread count this is bit-identical to training; elsewhere it drifts slightly,
which is what the verifier's delta allows for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..data import Dataset
from ..errors import FormatError, ModeldeedError, file_error
from ..models import build_model, load_state_exactly
from ..training import configure_determinism, make_optimizer, sgd_step
from .proof import Proof
from .store import MODEL_PREFIX, OPTIMIZER_PREFIX, RNG_CPU, ProofStore, batch_digest, batch_tensors

log = logging.getLogger(__name__)

MAX_PARAMETERS = 4_000_000_000  # a bound on what an adversary's architecture arguments can make us allocate


class ReplayMismatch(Exception):
    """A replayed batch does not hash to the recorded digest (the data is not what was trained on)."""


def build_checked_model(proof: Proof, *, trust_code: bool, source: str | Path) -> nn.Module:
    """The proof's architecture, sized on the meta device first so hostile arguments cannot exhaust memory."""
    spec = proof.header.spec
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
    model: nn.Module, tensors: Mapping[str, torch.Tensor], proof: Proof, source: str | Path, device: str = "cpu"
) -> torch.optim.Optimizer:
    """Load a checkpoint into `model` (exact tensors) and return an optimizer holding its state."""
    model_tensors = {k.removeprefix(MODEL_PREFIX): v.clone() for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    load_state_exactly(model, model_tensors, source)
    model.to(device)
    named = dict(model.named_parameters())
    trained = proof.header.trained_parameters
    for name in named:
        named[name].requires_grad_(name in trained)
    optimizer = make_optimizer([named[n] for n in trained], proof.header.config)
    for key, value in tensors.items():
        if not key.startswith(OPTIMIZER_PREFIX):
            continue
        state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition("/")
        if name not in trained or not state_key.isidentifier():
            raise file_error(FormatError, source, f"optimizer state {key!r} is not for a trained parameter")
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
    proof: Proof,
    store: ProofStore,
    data: Dataset,
    start_index: int,
    *,
    trust_code: bool = False,
    device: str = "cpu",
    model: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Replay from checkpoint `start_index` to the next one; return the resulting trained parameters.

    Raises ReplayMismatch if a rebuilt batch does not match its recorded hash.
    """
    start = proof.checkpoints[start_index]
    end = proof.checkpoints[start_index + 1]
    source = store.directory / start.file
    tensors = store.checkpoint(start_index)
    model = model if model is not None else build_checked_model(proof, trust_code=trust_code, source=source)
    optimizer = load_training_state(model, tensors, proof, source, device)
    configure_determinism(proof.header.config.deterministic)
    samples = store.samples()
    with torch.random.fork_rng(devices=[]):
        if RNG_CPU in tensors:
            try:
                torch.set_rng_state(tensors[RNG_CPU].clone())
            except RuntimeError as exc:
                raise file_error(FormatError, source, f"invalid RNG state ({exc})") from None
        for step in range(start.step, end.step):
            record = proof.steps[step]
            inputs, labels = batch_tensors(record, data, samples, device)
            if batch_digest(inputs, labels) != record.batch_sha256:
                raise ReplayMismatch(f"step {step}: the rebuilt batch does not match its recorded SHA-256")
            loss = sgd_step(model, optimizer, inputs, labels, record.lr)
            if not math.isfinite(float(loss)):
                log.warning("replay of step %d: loss is %s", step, float(loss))
    named = dict(model.named_parameters())
    return {name: named[name].detach().to("cpu") for name in proof.header.trained_parameters}
