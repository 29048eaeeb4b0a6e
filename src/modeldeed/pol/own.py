"""Recording a proof of learning from a user's own training loop.

The user keeps their model, their optimizer (SGD, Adam or AdamW), their DataLoader (workers, files on disk)
and their loop; once per step they hand the batch to the recorder, which trains it through the step function
and records it:

    config, loop = own_loop_settings(optimizer, epochs=3, batch_size=32, seed=seed,
                                     scheduler=SchedulerDoc(kind="cosine", arguments={"T_max": 90}))
    statement, opening = make_statement(data, config, spec, checkpoint_every=10, loop=loop)   # before training
    with PolRecorder("proof", model, optimizer, data=data, spec=spec, config=config, loop=loop,
                     statement=CarriedStatement(statement=statement, opening=opening), every=10) as rec:
        for epoch in range(config.epochs):
            for indices, x, y in rec.loader(ArraySamples(dir), epoch, num_workers=2):
                loss = rec.step(x, y, indices)

What trains is `pol.loop.LoopRunner.run_step`: the step function named in `loop` (so the verifier replays the
very function that trained), then the schedule. The recorder, not the user, steps the scheduler (built from its
description, so the statement binds its arguments). The batch is recorded as trained: its SHA-256 over the
tensors the step received; dataset samples by index (checked against the dataset, bit for bit), anything else
(a watermark's triggers, `watermark.mix.TriggerMixer`) stored in the proof.

Batch order and RNG follow from the seed as in modeldeed's loop (`training.epoch_batches`, `seed_run_rng`), so
the hardened verifier's checks apply unchanged. The recorder refuses a loop that draws from the global RNG
between steps (a DataLoader without its own generator does, when each epoch's iterator starts): a replay could
not reproduce it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelSpec, build_model
from ..training import TrainConfig, configure_determinism, epoch_batches, rng_devices, seed_run_rng
from .checkpoints import ZSTD_LEVEL
from .environment import current_environment, model_dtype
from .loop import BUILTIN_STEP, LoopDoc, LoopRunner, OptimizerDoc, SchedulerDoc, describe_optimizer, resolve_step
from .proof import DatasetInfo, ProofHeader
from .recorder import DEFAULT_KEYFRAME_EVERY, dataset_part_matches, optimizer_parameter_names
from .state import differing, training_state
from .statement import CarriedStatement, TriggerSet
from .store import batch_digest
from .writer import ProofWriter, step_record

log = logging.getLogger(__name__)


def own_loop_settings(
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    scheduler: SchedulerDoc | None = None,
    step: str = BUILTIN_STEP,
    accumulation: int = 1,
    clip_norm: float | None = None,
    device: str = "cpu",
    deterministic: bool = True,
) -> tuple[TrainConfig, LoopDoc]:
    """The settings of a run of a user's loop, for the statement (made before training) and the recorder.

    The `TrainConfig` carries what modeldeed's checks share with its own loop (epochs, batch size, seed, device,
    determinism; its lr, momentum and weight decay are the optimizer's); `LoopDoc` the rest.
    """
    described = describe_optimizer(optimizer)
    loop = LoopDoc(
        step=step,
        optimizer=described,
        scheduler=scheduler or SchedulerDoc(kind="none"),
        accumulation=accumulation,
        clip_norm=clip_norm,
    )
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=described.lr,
        momentum=described.momentum or 0.0,
        weight_decay=described.weight_decay,
        lr_milestones=(),
        lr_gamma=1.0,
        seed=seed,
        augment=False,
        device=device,
        deterministic=deterministic,
    )
    return config, loop


def statement_problem(carried: CarriedStatement, config: TrainConfig, loop: LoopDoc, every: int) -> str | None:
    """Why the statement is not this run's (the verifier would reject the proof), or None."""
    statement, opening = carried.statement, carried.opening
    if not statement.opens(opening) or opening.seed != config.seed:
        return "its seed commitment is not opened by this run's seed"
    if statement.config(opening.seed).to_json() != config.to_json():
        return "its training settings differ"
    if statement.loop is None or not statement.loop.same_as(loop):
        return "its loop (step, optimizer, schedule, accumulation, clipping) differs"
    if statement.checkpoint_every != every:
        return f"its checkpoint interval is {statement.checkpoint_every}, not {every}"
    return None


def same_optimizer(doc: OptimizerDoc, optimizer: torch.optim.Optimizer) -> bool:
    return describe_optimizer(optimizer).model_dump() == doc.model_dump()


class PolRecorder:
    """A context manager that trains each step of a user's loop through the declared step and records a proof."""

    def __init__(
        self,
        directory: str | Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        data: Dataset,
        spec: ModelSpec,
        config: TrainConfig,
        loop: LoopDoc,
        every: int = 100,
        statement: CarriedStatement | None = None,
        committed: TriggerSet | None = None,
        keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
        level: int = ZSTD_LEVEL,
        check_initial: bool = True,
    ) -> None:
        if every < 1:
            raise ModeldeedError(f"checkpoint interval k must be >= 1, got {every}")
        if config.augment:
            raise ModeldeedError("a user's own loop records the batches it trains on; set augment=False")
        if not same_optimizer(loop.optimizer, optimizer):
            raise ModeldeedError(
                f"the optimizer is not the one the settings describe ({describe_optimizer(optimizer).model_dump()} "
                f"vs {loop.optimizer.model_dump()})"
            )
        if optimizer.state:
            raise ModeldeedError("the optimizer has already stepped: a proof is recorded from a fresh optimizer")
        if statement is not None:
            problem = statement_problem(statement, config, loop, every)
            if problem:
                raise ModeldeedError(f"the training statement does not describe this run: {problem}")
        self.directory, self.model, self.optimizer = Path(directory), model, optimizer
        self.data, self.spec, self.config, self.loop = data, spec, config, loop
        self.every, self.statement, self.committed = every, statement, committed
        self.keyframe_every, self.level, self.check_initial = keyframe_every, level, check_initial
        self.per_epoch = config.steps_per_epoch(len(data))
        self.total_steps = self.per_epoch * config.epochs
        self.step_index = 0
        self.proof_id: str | None = None
        self.writer: ProofWriter | None = None
        self.runner: LoopRunner | None = None
        self._rng_context: Any = None
        self._rng: torch.Tensor | None = None
        self._names: list[str] = []
        self._warned = False
        self._epoch: tuple[int, list[np.ndarray]] | None = None

    # ------------------------------------------------------------------------------------------ context

    def __enter__(self) -> PolRecorder:
        config = self.config
        if self.check_initial:
            self._check_initial_model()
        self._names = optimizer_parameter_names(self.model, self.optimizer)
        configure_determinism(config.deterministic)
        self._rng_context = torch.random.fork_rng(devices=rng_devices(config))
        self._rng_context.__enter__()
        seed_run_rng(config)
        # the user's own step function runs in the user's own process: importing it here trusts nothing new
        step_function = resolve_step(self.loop.step, trust_code=True)
        self.runner = LoopRunner(self.loop, self.model, self.optimizer, step_function, self.per_epoch)
        header = ProofHeader(
            spec=self.spec,
            config=config,
            trained_parameters=tuple(self._names),
            dataset=DatasetInfo(
                self.data.name, self.data.fingerprint, len(self.data), self.data.input_shape, self.data.num_classes
            ),
            initialisation={"scheme": "pytorch-default", "seed": config.seed},
            environment=current_environment(config.device, model_dtype(self.model), config.deterministic),
            checkpoint_every=self.every,
            keyframe_every=self.keyframe_every,
            statement=self.statement,
            loop=self.loop,
        )
        self.writer = ProofWriter(self.directory, header, level=self.level)
        if self.committed is not None:
            self.writer.add_committed_samples(self.committed.x, self.committed.y)
        self._checkpoint()
        self._rng = torch.get_rng_state()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                if self.step_index != self.total_steps:
                    raise ModeldeedError(
                        f"{self.directory}: training stopped after {self.step_index} of {self.total_steps} steps; "
                        "the proof is incomplete"
                    )
                assert self.writer is not None
                self.proof_id = self.writer.finish()
        finally:
            if self._rng_context is not None:
                self._rng_context.__exit__(None, None, None)
                self._rng_context = None

    # ------------------------------------------------------------------------------------------ data

    def batch_sampler(self, epoch: int) -> list[list[int]]:
        """The seeded batches of `epoch` (the order the verifier checks), for a DataLoader's `batch_sampler`."""
        return [b.tolist() for b in epoch_batches(self.config, len(self.data), epoch)]

    def loader(self, samples: torch.utils.data.Dataset, epoch: int, **options: Any) -> torch.utils.data.DataLoader:
        """A DataLoader over `samples` in the seeded order of `epoch`, with its own generator (so that starting it
        draws nothing from the run's RNG). `options`: num_workers, pin_memory, ..."""
        return torch.utils.data.DataLoader(
            samples, batch_sampler=self.batch_sampler(epoch), generator=torch.Generator().manual_seed(epoch), **options
        )

    # ------------------------------------------------------------------------------------------ steps

    def step(self, inputs: torch.Tensor, labels: torch.Tensor, indices: Any = None) -> torch.Tensor:
        """Train one step on (inputs, labels) through the declared step function and record it; return the loss.

        `indices`: the dataset indices of the batch's first rows (from the loader); they must be the seeded
        order's. Rows after them (triggers) are stored in the proof."""
        if self.writer is None or self.runner is None:
            raise ModeldeedError("step() is called inside `with PolRecorder(...)`")
        if self.step_index >= self.total_steps:
            raise ModeldeedError(f"all {self.total_steps} steps of the declared settings are already recorded")
        expected = self._expected_indices(self.step_index)
        if indices is not None:
            given = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)
            if given.shape != expected.shape or not (given == expected).all():
                raise ModeldeedError(
                    f"step {self.step_index}: the batch's indices are not the seeded order's; iterate "
                    "rec.loader(...) or rec.batch_sampler(epoch)"
                )
        if self._rng is not None and not torch.equal(torch.get_rng_state(), self._rng):
            raise ModeldeedError(
                f"step {self.step_index}: the loop drew from the global RNG between steps (a DataLoader without "
                "its own generator does); a replay cannot reproduce that: use rec.loader(...) or generator=..."
            )
        x = inputs.detach().to("cpu")
        y = labels.detach().to("cpu")
        index = torch.from_numpy(expected)
        n = len(index)
        if dataset_part_matches(self.data, index, None, x, y):
            recorded = expected
            stored = self.writer.add_samples(x[n:], y[n:]) if len(x) > n else []
        else:
            if not self._warned:
                log.warning("step %d does not train on the dataset's samples; storing whole batches", self.step_index)
                self._warned = True
            recorded, stored = np.zeros(0, dtype=np.int64), self.writer.add_samples(x, y)
        self.writer.add_step(step_record(recorded, stored, batch_digest(x, y), self.runner.lr, None))
        loss = self.runner.run_step(inputs, labels)
        self.step_index += 1
        if self.step_index % self.every == 0 or self.step_index == self.total_steps:
            self._checkpoint()
        self._rng = torch.get_rng_state()
        return loss

    # ------------------------------------------------------------------------------------------ internals

    def _expected_indices(self, step: int) -> np.ndarray:
        """`training.batch_indices`, with each epoch's permutation drawn once, not once per step."""
        epoch, within = divmod(step, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_batches(self.config, len(self.data), epoch))
        return self._epoch[1][within]

    def _checkpoint(self) -> None:
        assert self.writer is not None and self.runner is not None
        cuda = self.config.device if self.config.device.startswith("cuda") else None
        tensors = training_state(
            self.model, self.optimizer, self._names, self.step_index, self.runner.lr, cuda_device=cuda
        )
        self.writer.add_checkpoint(self.step_index, tensors)

    def _check_initial_model(self) -> None:
        """W_0 must be what the seed makes (the hardened verifier re-derives it): build it and compare."""
        fresh = build_model(self.spec, seed=self.config.seed, trust_code=True)
        mine = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        differ = differing(mine, {k: v.detach() for k, v in fresh.state_dict().items()})
        if differ:
            raise ModeldeedError(
                f"the model is not build_model(spec, seed={self.config.seed}) (differs in {', '.join(differ[:3])}); "
                "build it that way so that a verifier can re-derive W_0 from the seed"
            )
