"""Writing a forged trajectory as a proof in modeldeed's own format, ready for `modeldeed pol verify`.

The proof is written with the PoL module's own `ProofWriter`, exactly as the recorder writes an honest one:
the declared hyper-parameters, every step's batch (dataset indices for real samples; modified samples as
exact float32 tensors in the proof's sample files, hashed like any batch), and checkpoints with their
weights and momentum buffers. Nothing marks it as forged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..pol.proof import DatasetInfo, ProofHeader, StepRecord
from ..pol.recorder import DEFAULT_KEYFRAME_EVERY, environment
from ..pol.state import training_state
from ..pol.store import batch_digest
from ..pol.writer import ProofWriter
from ..training import make_optimizer, rng_devices, seed_run_rng
from .pol_spoof import SpoofCheckpoint, SpoofedTrajectory, SpoofResult, SpoofStep, load_momentum


def trained_parameter_names(trajectory: SpoofedTrajectory) -> tuple[str, ...]:
    """The trained parameters in the optimizer's order (registration order), as the recorder lists them."""
    return tuple(name for name, p in trajectory.template.named_parameters() if p.requires_grad)


def spoof_header(trajectory: SpoofedTrajectory, *, keyframe_every: int = DEFAULT_KEYFRAME_EVERY) -> ProofHeader:
    data, config = trajectory.dataset, trajectory.config
    env = environment(config, trajectory.template)
    if trajectory.free_field is not None:
        env = env.model_copy(update={"platform": trajectory.free_field})
    return ProofHeader(
        spec=trajectory.spec,
        config=config,
        trained_parameters=trained_parameter_names(trajectory),
        dataset=DatasetInfo(data.name, data.fingerprint, len(data), data.input_shape, data.num_classes),
        initialisation={"scheme": "pytorch-default", "seed": config.seed},
        environment=env,
        checkpoint_every=trajectory.k,
        keyframe_every=keyframe_every,
    )


def checkpoint_tensors(trajectory: SpoofedTrajectory, checkpoint: SpoofCheckpoint) -> dict[str, torch.Tensor]:
    """The tensors the recorder stores (`pol.training_state`): weights, momentum, RNG and schedule position.

    Before the first step an honest optimizer holds no momentum; a forged checkpoint 0 carries buffers only
    when they are not zero. The RNG state is the one a run of the declared seed starts with (no spoof here
    draws from it, so it stays that in every checkpoint, as in an honest run of a model without dropout).
    """
    config, model = trajectory.config, trajectory.template
    model.load_state_dict(checkpoint.model_state)
    optimizer = make_optimizer(model.parameters(), config)
    moving = checkpoint.step > 0 or any(bool(b.any()) for b in checkpoint.momentum.values())
    if moving and config.momentum:
        load_momentum(optimizer, model, checkpoint.momentum)
    per_epoch = config.steps_per_epoch(len(trajectory.dataset))
    with torch.random.fork_rng(devices=rng_devices(config)):
        seed_run_rng(config)
        return training_state(
            model,
            optimizer,
            trained_parameter_names(trajectory),
            checkpoint.step,
            config.lr_at(checkpoint.step // per_epoch),
        )


def step_record(writer: ProofWriter, trajectory: SpoofedTrajectory, step: SpoofStep) -> StepRecord:
    """Dataset indices for real samples, stored samples for the modified ones; the hash covers the exact batch."""
    stored: tuple[int, ...] = ()
    if step.modified:
        assert step.inputs is not None and step.labels is not None
        inputs = step.inputs.detach().to("cpu", torch.float32).contiguous()
        stored = tuple(writer.add_samples(inputs, step.labels.detach().to("cpu", torch.int64)))
    x, y = step.batch(trajectory.dataset)
    return StepRecord(np.asarray(step.indices, dtype=np.int64).copy(), stored, batch_digest(x, y), step.lr, None)


def write_spoof_proof(result: SpoofResult | SpoofedTrajectory, directory: str | Path) -> str:
    """Write the forged proof into `directory` (which must not hold a proof yet); return its proof id."""
    trajectory = result.trajectory if isinstance(result, SpoofResult) else result
    writer = ProofWriter(directory, spoof_header(trajectory))
    for checkpoint in trajectory.checkpoints:
        while writer.next_step < checkpoint.step:
            writer.add_step(step_record(writer, trajectory, trajectory.steps[writer.next_step]))
        writer.add_checkpoint(checkpoint.step, checkpoint_tensors(trajectory, checkpoint))
    proof_id = writer.finish()
    if trajectory.finish is not None:
        proof_id = trajectory.finish(Path(directory), result.details if isinstance(result, SpoofResult) else {})
    return proof_id
