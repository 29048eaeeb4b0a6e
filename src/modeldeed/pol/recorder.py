"""Recording a proof of learning while training (Algorithm 1 of Jia et al.), as a hook of the one loop.

The recorder must be the last hook: it records the batch that is actually trained on, after any
other hook (e.g. watermark marking) has changed it. Samples that are not plain dataset samples at the
recorded indices are stored inside the proof, so the verifier's replay sees the exact same batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset, augment
from ..errors import ModeldeedError
from ..models import ModelSpec, load_state_exactly
from ..training import Batch, Hook, TrainConfig, TrainResult, TrainState, make_optimizer, train
from .checkpoints import ZSTD_LEVEL
from .environment import Environment, current_environment, model_dtype
from .proof import DatasetInfo, ProofHeader
from .state import MODEL_PREFIX, OPTIMIZER_PREFIX, RNG_CPU, training_state
from .statement import CarriedStatement, TriggerSet
from .store import batch_digest
from .writer import ProofWriter, header_summary, step_record

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_EVERY = 100
DEFAULT_KEYFRAME_EVERY = 10


class ProofRecorder(Hook):
    """Checkpoint W_0, every k steps and the final state; record every step's batch, hash and learning rate."""

    def __init__(
        self,
        directory: str | Path,
        *,
        spec: ModelSpec,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        initialisation: str = "pytorch-default",
        init_seed: int | None = None,
        keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
        resume: bool = False,
        level: int = ZSTD_LEVEL,
        statement: CarriedStatement | None = None,
        committed: TriggerSet | None = None,
    ) -> None:
        if checkpoint_every < 1:
            raise ModeldeedError(f"checkpoint interval k must be >= 1, got {checkpoint_every}")
        self.directory = Path(directory)
        self.spec = spec
        self.checkpoint_every = checkpoint_every
        self.initialisation = initialisation
        self.init_seed = init_seed
        self.keyframe_every = keyframe_every
        self.level = level
        self.statement = statement
        self.committed = committed
        self.writer: ProofWriter | None = ProofWriter.resume(directory, level=level) if resume else None
        self.proof_id: str | None = None
        self._names: list[str] = []
        self._warned = False

    def restore(self, model: nn.Module) -> tuple[dict[str, Any], int, torch.Tensor | None]:
        """Put the last committed checkpoint into `model`; return (optimizer state, start step, RNG state)
        for `train`."""
        if self.writer is None:
            raise ModeldeedError("restore() is only for a recorder created with resume=True")
        tensors = self.writer.last_checkpoint()
        model_tensors = {
            k.removeprefix(MODEL_PREFIX): v.clone() for k, v in tensors.items() if k.startswith(MODEL_PREFIX)
        }
        load_state_exactly(model, model_tensors, self.directory / self.writer.checkpoints[-1].file)
        optimizer = make_optimizer(self.trained_parameters(model), self.writer.header.config)
        named = dict(model.named_parameters())
        for key, value in tensors.items():
            if key.startswith(OPTIMIZER_PREFIX):
                state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition("/")
                optimizer.state[named[name]][state_key] = value.clone()
        rng = tensors[RNG_CPU].clone() if RNG_CPU in tensors else None
        return optimizer.state_dict(), self.writer.next_step, rng

    def trained_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        assert self.writer is not None
        named = dict(model.named_parameters())
        missing = [n for n in self.writer.header.trained_parameters if n not in named]
        if missing:
            raise ModeldeedError(f"{self.directory}: the recording trains parameters the model lacks: {missing[:3]}")
        return [named[n] for n in self.writer.header.trained_parameters]

    def on_train_start(self, state: TrainState) -> None:
        self._names = optimizer_parameter_names(state.model, state.optimizer)
        header = ProofHeader(
            spec=self.spec,
            config=state.config,
            trained_parameters=tuple(self._names),
            dataset=DatasetInfo(
                state.data.name, state.data.fingerprint, len(state.data), state.data.input_shape, state.data.num_classes
            ),
            initialisation={"scheme": self.initialisation, "seed": self.init_seed},
            environment=environment(state.config, state.model),
            checkpoint_every=self.checkpoint_every,
            keyframe_every=self.keyframe_every,
            statement=self.statement,
        )
        if self.writer is None:
            if state.step != 0:
                raise ModeldeedError(
                    "a proof must be recorded from step 0; to continue an interrupted recording, "
                    "resume it (record_training(..., resume=True), CLI --resume)"
                )
            self.writer = ProofWriter(self.directory, header, level=self.level)
            if self.committed is not None:
                self.writer.add_committed_samples(self.committed.x, self.committed.y)
            self._checkpoint(state)
            return
        old, new = header_summary(self.writer.header), header_summary(header)
        differ = sorted(k for k in old if old[k] != new[k])
        if differ:
            raise ModeldeedError(
                f"{self.directory}: cannot resume: {', '.join(differ)} differ from the interrupted run"
            )
        if state.step != self.writer.next_step:
            raise ModeldeedError(
                f"{self.directory}: the recording stopped at step {self.writer.next_step}, "
                f"but training starts at step {state.step}"
            )

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        assert self.writer is not None
        x = batch.inputs.detach().to("cpu")
        y = batch.labels.detach().to("cpu")
        index = torch.from_numpy(np.asarray(batch.indices, dtype=np.int64))
        n = len(index)
        if dataset_part_matches(state.data, index, batch.augment_seed, x, y):
            indices, seed = batch.indices, batch.augment_seed
            stored = self.writer.add_samples(x[n:], y[n:]) if len(x) > n else []
        else:
            if not self._warned:
                log.warning(
                    "a hook changed the dataset samples of step %d; storing whole batches in the proof", batch.step
                )
                self._warned = True
            indices, seed = np.zeros(0, dtype=np.int64), None
            stored = self.writer.add_samples(x, y)
        self.writer.add_step(step_record(indices, stored, batch_digest(x, y), batch.lr, seed))
        return batch

    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None:
        if state.step % self.checkpoint_every == 0 or state.step == state.total_steps:
            self._checkpoint(state)

    def on_train_end(self, state: TrainState) -> None:
        assert self.writer is not None
        if not self.writer.checkpoints or self.writer.checkpoints[-1].step != state.step:
            self._checkpoint(state)
        if state.step == state.total_steps:
            self.proof_id = self.writer.finish()

    def _checkpoint(self, state: TrainState) -> None:
        assert self.writer is not None
        self.writer.add_checkpoint(state.step, checkpoint_tensors(state, self._names))


def dataset_part_matches(
    data: Dataset, index: torch.Tensor, seed: int | None, x: torch.Tensor, y: torch.Tensor
) -> bool:
    """Do the first len(index) samples equal data[index] (augmented with `seed`), bit for bit?"""
    n = len(index)
    if len(x) < n or x.dtype != data.x.dtype or y.dtype != data.y.dtype:
        return False
    expected = data.x[index]
    if seed is not None and n:
        expected = augment(expected, seed)
    return bool(torch.equal(x[:n], expected) and torch.equal(y[:n], data.y[index]))


def optimizer_parameter_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    names = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in by_id:
                raise ModeldeedError("the optimizer trains a tensor that is not a parameter of the model")
            names.append(by_id[id(p)])
    return names


def checkpoint_tensors(state: TrainState, names: Sequence[str]) -> dict[str, torch.Tensor]:
    per_epoch = state.config.steps_per_epoch(len(state.data))
    cuda = state.config.device if state.config.device.startswith("cuda") else None
    return training_state(
        state.model, state.optimizer, names, state.step, state.config.lr_at(state.step // per_epoch), cuda_device=cuda
    )


def environment(config: TrainConfig, model: nn.Module) -> Environment:
    """Where the proof is recorded: a verifier in the same environment requires a bit-identical replay."""
    return current_environment(config.device, model_dtype(model), config.deterministic)


@dataclass(frozen=True)
class Recording:
    result: TrainResult
    proof_id: str
    directory: Path


def record_training(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    directory: str | Path,
    *,
    spec: ModelSpec,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    hooks: Sequence[Hook] = (),
    parameters: Sequence[nn.Parameter] | None = None,
    init_seed: int | None = None,
    initialisation: str = "pytorch-default",
    resume: bool = False,
    progress: bool = True,
    keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
    statement: CarriedStatement | None = None,
    committed: TriggerSet | None = None,
) -> Recording:
    """Train with `train` while recording a proof into `directory` (the recorder runs after `hooks`).

    With `resume=True`, an interrupted recording continues from its last checkpoint: the model, the
    optimizer state and the RNG are restored from it, and the finished proof is the same as an
    uninterrupted one. With `statement` (`pol.statement.CarriedStatement`), the owner's training statement
    and its seed opening go into proof.json, for the hardened verifier (`pol.hardened`); `committed` (the
    statement's trigger set) is stored first, so that the proof's stored samples 0 .. M-1 are the committed
    triggers in their committed order.
    """
    recorder = ProofRecorder(
        directory,
        spec=spec,
        checkpoint_every=checkpoint_every,
        initialisation=initialisation,
        init_seed=init_seed,
        keyframe_every=keyframe_every,
        resume=resume,
        statement=statement,
        committed=committed,
    )
    optimizer_state, start, rng_state = None, 0, None
    if resume:
        optimizer_state, start, rng_state = recorder.restore(model)
        parameters = recorder.trained_parameters(model)
    result = train(
        model,
        data,
        config,
        hooks=[*hooks, recorder],
        parameters=parameters,
        optimizer_state=optimizer_state,
        start_step=start,
        rng_state=rng_state,
        progress=progress,
    )
    if recorder.proof_id is None:
        raise ModeldeedError(f"{directory}: training ended before its last step; the proof is incomplete")
    return Recording(result, recorder.proof_id, Path(directory))
