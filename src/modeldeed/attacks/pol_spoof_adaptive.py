"""Adaptive spoofs: what a prover who knows every check of a verifier tries next.

Threat model: as Zhang et al.'s (the adversary holds the final weights W_T and the training data and
declares the hyper-parameters of the proof it forges), against a verifier that already stops the published
spoofs: W_0 must be the honest initialisation of the declared seed and the batches the seeded order's, so
these spoofs start from the seed (`w0="seed"`) and use real, unmodified batches. Each exploits something
the paper's verifier (`VerificationPolicy.reference()`) takes on trust:

- `MomentumSteering` ("steer-momentum"): checkpoints every step (k = 1), each with a momentum buffer chosen so
  that one real SGD step on the real batch lands exactly on the next point of a path to W_T:
  buf* = ((W_t - W*)/lr - g_t - wd·W_t)/mu. Every replay of the weights is bit-exact; only the momentum
  stored at the end of an interval is not what the interval produces.
- `PartialTraining` ("partial-trained"): the proof declares one small parameter (by default the smallest
  tensor, a bias) as the only one trained; it is trained for real, while every other weight is placed on a
  path from W_0 to W_T. A verifier that compares only the declared trained parameters sees exact replays.
- `ChallengeGrinding` ("grind-challenge"): a proof whose first intervals are honest training from the seed
  and whose last `fabricated` fraction is placed on a path to W_T (pieces of unequal size, so no two updates
  are parallel and equal), then ground: a value of a free field is searched until the verifier's draw of
  intervals misses every fabricated one. Free-form grinding varies proof.json's `environment.platform`
  (what the previous hardened verifier's proof-id draw hashed); checkpoint grinding varies low bits of the last
  checkpoint's momentum (what enters the commitment root, yet no replay starts from it).

The verdicts come from the real verifiers (`pol_spoof_report.spoof_and_verify`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..crypto import tagged_digest
from ..errors import ModeldeedError
from ..files import canonical_json, read_json_object, sha256_bytes, write_bytes_atomic
from ..pol.challenge import DEFAULT_MIN_FABRICATED, DEFAULT_SOUNDNESS_BITS, derive_challenge
from ..pol.commitment import checkpoint_leaf, steps_leaf
from ..pol.merkle import MerkleTree
from ..pol.proof import MAX_PROOF_BYTES, PROOF_FILE, StepRecord
from ..pol.state import state_digests
from ..pol.store import batch_digest
from ..training import make_optimizer
from .pol_spoof import (
    ProofSpoof,
    SpoofCheckpoint,
    SpoofContext,
    SpoofedTrajectory,
    SpoofStep,
    checkpoint_steps,
    momentum_buffers,
    state_of,
    zero_momentum,
)

log = logging.getLogger(__name__)

PREVIOUS_DRAW_TAG = b"modeldeed/pol-intervals/v1"


def uneven_path(
    start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], pieces: int, rng: np.random.Generator
) -> list[dict[str, torch.Tensor]]:
    """pieces + 1 points from `start` to `end` (both included) along the straight line, in steps of random, unequal
    length (0.7 to 1.3 of the mean), so that no two consecutive updates are parallel and equal in size."""
    lengths = rng.uniform(0.7, 1.3, size=pieces)
    fractions = np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum()])
    points = []
    for fraction in fractions:
        point = {}
        for name, a in start.items():
            b = end[name]
            if a.is_floating_point() and fraction < 1.0:
                point[name] = (a.double() + float(fraction) * (b.double() - a.double())).to(a.dtype)
            else:
                point[name] = (b if fraction >= 1.0 else a).detach().clone()
        points.append(point)
    return points


@dataclass(frozen=True, kw_only=True)
class MomentumSteering(ProofSpoof):
    """Steering through stored optimizer state: k = 1, every checkpoint's momentum chosen to land the next real
    step on a path to W_T. Requires the declared momentum to be > 0.

    The first step is an honest one from a fresh optimizer, so W_0 holds no momentum; from then on each interval
    ends with the momentum the next step needs, not the one its own step produced. Cost: two gradient
    evaluations per step (one to choose the momentum, one for the real step).
    """

    name: ClassVar[str] = "steer-momentum"
    plan_length: ClassVar[bool] = False
    k: int = 1
    w0: str = "seed"

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config = context.config
        if context.k != 1:
            raise ModeldeedError(f"{self.name}: steering by momentum needs a checkpoint every step (k = 1)")
        if not config.momentum > 0:
            raise ModeldeedError(f"{self.name}: the declared momentum must be > 0 to steer through it")
        per_epoch = config.steps_per_epoch(len(context.data))
        total = config.epochs * per_epoch
        model = context.fresh_model()
        optimizer = make_optimizer(model.parameters(), config)
        path = uneven_path(context.w0, context.wt, total, context.rng)
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        trajectory.checkpoints.append(SpoofCheckpoint(0, state_of(model), zero_momentum(model)))
        for step in range(total):
            indices = context.step_indices(step)
            lr = config.lr_at(step // per_epoch)
            x, y = context.batch(indices)
            if step > 0:  # choose the momentum that lands this real step on the path
                grads = gradient(model, x, y, [p for _, p in trained])
                context.cost.gradient_evaluations += 1
                mu, wd = config.momentum, config.weight_decay
                for (name, p), g in zip(trained, grads):
                    w, target = p.detach(), path[step + 1][name].to(p.device)
                    optimizer.state[p]["momentum_buffer"] = ((w - target) / lr - g - wd * w) / mu
                trajectory.checkpoints.append(
                    SpoofCheckpoint(step, state_of(model), momentum_buffers(optimizer, model))
                )
            context.train_step(model, optimizer, x, y, lr)
            trajectory.steps.append(SpoofStep(indices, lr))
        trajectory.checkpoints.append(SpoofCheckpoint(total, state_of(model), momentum_buffers(optimizer, model)))
        final = state_of(model)
        context.details["distance_to_model"] = float(
            sum(((final[n].double() - context.wt[n].double()) ** 2).sum() for n, _ in trained) ** 0.5
        )


def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    """The loss gradient `sgd_step` will use (train mode; buffers restored, so only the real step moves them)."""
    import torch.nn.functional as F

    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train()
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
    return [g.detach() for g in grads]


@dataclass(frozen=True, kw_only=True)
class PartialTraining(ProofSpoof):
    """Declaring only part of the model as trained: `parameter` (default: the smallest tensor) is trained for
    real on the real batches; every other weight follows a path from W_0 to W_T, unchecked by a verifier that
    only compares what the proof says is trained.
    """

    name: ClassVar[str] = "partial-trained"
    plan_length: ClassVar[bool] = False
    w0: str = "seed"
    parameter: str | None = None

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config = context.config
        per_epoch = config.steps_per_epoch(len(context.data))
        total = config.epochs * per_epoch
        marks = checkpoint_steps(total, context.k)
        named = dict(trajectory.template.named_parameters())
        chosen = self.parameter or min(named, key=lambda n: (named[n].numel(), n))
        if chosen not in named:
            raise ModeldeedError(f"{self.name}: the model has no parameter {chosen!r}")
        for name, p in named.items():
            p.requires_grad_(name == chosen)
        model = context.fresh_model()
        for name, p in model.named_parameters():
            p.requires_grad_(name == chosen)
        optimizer = make_optimizer(model.parameters(), config)
        path = uneven_path(context.w0, context.wt, len(marks) - 1, context.rng)
        for i, (start, end) in enumerate(zip(marks[:-1], marks[1:])):
            place(model, path[i], chosen)
            trajectory.checkpoints.append(SpoofCheckpoint(start, state_of(model), momentum_buffers(optimizer, model)))
            for step in range(start, end):
                indices = context.step_indices(step)
                lr = config.lr_at(step // per_epoch)
                context.train_step(model, optimizer, *context.batch(indices), lr)
                trajectory.steps.append(SpoofStep(indices, lr))
        place(model, path[-1], chosen)
        trajectory.checkpoints.append(SpoofCheckpoint(total, state_of(model), momentum_buffers(optimizer, model)))
        context.details.update({"trained_parameter": chosen, "trained_values": int(named[chosen].numel())})


def step_towards(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """a + fraction·(b - a) for floating tensors (b itself from fraction 1 on); other tensors stay a's."""
    out = {}
    for name, t in a.items():
        if t.is_floating_point():
            out[name] = (
                b[name].clone()
                if fraction >= 1
                else (t.double() + fraction * (b[name].double() - t.double())).to(t.dtype)
            )
        else:
            out[name] = t.clone()
    return out


def place(model: nn.Module, point: dict[str, torch.Tensor], keep: str) -> None:
    """Load `point` into every model tensor but the parameter `keep` (which training moves)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name != keep:
                t.copy_(point[name])


@dataclass(frozen=True, kw_only=True)
class ChallengeGrinding(ProofSpoof):
    """Grinding the interval challenge: honest intervals first, the last `fabricated` fraction placed on a path
    to W_T, then a free value searched (up to `tries`) until the verifier's draw misses every fabricated interval.

    Extra arguments:
        fabricated (float): fraction of the intervals that are fabricated. Default: 0.5.
        grind (str): "free-form" varies proof.json's environment.platform; "checkpoint" varies low bits of the
            last checkpoint's momentum (committed to, but no replay starts from it). Default: "free-form".
        tries (int): the grinding budget. Default: 10,000.
        soundness_bits, min_fabricated (float): the verifier's challenge settings the attacker grinds against.
    """

    name: ClassVar[str] = "grind-challenge"
    plan_length: ClassVar[bool] = False
    w0: str = "seed"
    fabricated: float = 0.5
    grind: str = "free-form"
    tries: int = 10_000
    soundness_bits: float = DEFAULT_SOUNDNESS_BITS
    min_fabricated: float = DEFAULT_MIN_FABRICATED

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.fabricated < 1 or self.grind not in ("free-form", "checkpoint") or self.tries < 1:
            raise ModeldeedError(
                f"{self.name}: fabricated must lie in (0, 1), grind be free-form or checkpoint, tries >= 1"
            )

    def run(self, context: SpoofContext, trajectory: SpoofedTrajectory) -> None:
        config = context.config
        per_epoch = config.steps_per_epoch(len(context.data))
        total = config.epochs * per_epoch
        marks = checkpoint_steps(total, context.k)
        count = len(marks) - 1
        fake = max(1, min(count - 1, round(self.fabricated * count)))
        # the last interval and a random choice of the others are fabricated, spread over every epoch
        others = context.rng.choice(count - 1, size=fake - 1, replace=False) if fake > 1 else []
        fabricated = {count - 1, *(int(i) for i in others)}
        model = context.fresh_model()
        optimizer = make_optimizer(model.parameters(), config)
        sizes = context.rng.uniform(0.7, 1.3, size=fake)
        left = float(sizes.sum())
        for i, (start, end) in enumerate(zip(marks[:-1], marks[1:])):
            trajectory.checkpoints.append(SpoofCheckpoint(start, state_of(model), momentum_buffers(optimizer, model)))
            if i in fabricated:  # jump an uneven piece of the way to W_T (all of it at the last interval)
                piece = float(sizes[len([f for f in fabricated if f < i])])
                fraction = 1.0 if i == count - 1 else piece / left
                place(model, step_towards(state_of(model), context.wt, fraction), keep="")
                left -= piece
            for step in range(start, end):
                indices = context.step_indices(step)
                lr = config.lr_at(step // per_epoch)
                if i not in fabricated:
                    context.train_step(model, optimizer, *context.batch(indices), lr)
                trajectory.steps.append(SpoofStep(indices, lr))
        trajectory.checkpoints.append(SpoofCheckpoint(total, state_of(model), momentum_buffers(optimizer, model)))
        context.details.update({"intervals": count, "fabricated": sorted(fabricated)})
        if self.grind == "checkpoint":
            context.details["grinding"] = self.grind_checkpoint(trajectory, fabricated)
        else:
            trajectory.finish = lambda directory, details: self.grind_free_form(
                directory, trajectory, fabricated, details
            )

    def draw_misses(self, root: bytes, count: int, fabricated: set[int]) -> bool:
        challenge = derive_challenge(
            root, count, soundness_bits=self.soundness_bits, min_fabricated=self.min_fabricated
        )
        return not fabricated.intersection(challenge.intervals)

    def grind_checkpoint(self, trajectory: SpoofedTrajectory, fabricated: set[int]) -> dict[str, object]:
        """Flip low bits of the last checkpoint's momentum (no replay starts there, and the model in dispute is its
        weights alone: a free field the commitment covers) until the draw misses every fabricated interval."""
        from .pol_spoof_proof import checkpoint_tensors

        leaves = commitment_leaves(trajectory)
        last = len(trajectory.checkpoints) - 1
        checkpoint = trajectory.checkpoints[last]
        state = checkpoint.momentum if checkpoint.momentum else checkpoint.model_state
        name = next(n for n, t in state.items() if t.dtype == torch.float32 and t.numel())
        original = state[name].clone()
        words = original.reshape(-1).view(torch.int32)
        for attempt in range(self.tries):
            changed = words.clone()
            changed[attempt % changed.numel()] ^= 1 + attempt // changed.numel()
            state[name] = changed.view(original.dtype).reshape(original.shape)
            leaves[2 * last] = checkpoint_leaf(
                last, checkpoint.step, *state_digests(checkpoint_tensors(trajectory, checkpoint))
            )
            if self.draw_misses(MerkleTree(leaves).root, last, fabricated):
                return {"field": "checkpoint", "tries": attempt + 1, "missed": True}
        state[name] = original
        return {"field": "checkpoint", "tries": self.tries, "missed": False}

    def grind_free_form(
        self, directory: Path, trajectory: SpoofedTrajectory, fabricated: set[int], details: dict[str, object]
    ) -> str:
        """Vary environment.platform in the written proof.json; keep the value that made a draw miss."""
        from ..pol.commitment import commit_proof

        path = directory / PROOF_FILE
        doc = read_json_object(path, within=directory, max_bytes=MAX_PROOF_BYTES)
        root = bytes.fromhex(commit_proof(directory)[0].root)
        count = len(trajectory.checkpoints) - 1
        per_epoch = trajectory.config.steps_per_epoch(len(trajectory.dataset))
        epochs = [trajectory.checkpoints[i].step // per_epoch for i in range(count)]
        base = doc["environment"]["platform"]
        missed, previous = False, None
        for attempt in range(self.tries):
            doc["environment"]["platform"] = f"{base} #{attempt}"
            if previous is None and not fabricated.intersection(
                previous_draw(sha256_bytes(canonical_json(doc)), epochs)
            ):
                previous = attempt
            if self.draw_misses(root, count, fabricated):  # the field does not enter the root: never changes
                missed = True
                break
        chosen = attempt if missed else previous
        doc["environment"]["platform"] = base if chosen is None else f"{base} #{chosen}"
        data = canonical_json(doc)
        write_bytes_atomic(path, data)
        details["grinding"] = {
            "field": "free-form",
            "tries": attempt + 1,
            "missed": missed,
            "previous_verifier_missed_after": None if previous is None else previous + 1,
        }
        log.info("%s: %s", self.name, details["grinding"])
        return hashlib.sha256(data).hexdigest()


def commitment_leaves(trajectory: SpoofedTrajectory) -> list[bytes]:
    """The proof commitment's leaves for a trajectory before it is written (what `pol.commitment` computes)."""
    from .pol_spoof_proof import checkpoint_tensors

    leaves = []
    checkpoints = trajectory.checkpoints
    for i, checkpoint in enumerate(checkpoints):
        leaves.append(checkpoint_leaf(i, checkpoint.step, *state_digests(checkpoint_tensors(trajectory, checkpoint))))
        if i + 1 < len(checkpoints):
            first, end = checkpoint.step, checkpoints[i + 1].step
            records = []
            for step in trajectory.steps[first:end]:
                x, y = step.batch(trajectory.dataset)
                records.append(
                    StepRecord(np.asarray(step.indices, dtype=np.int64), (), batch_digest(x, y), step.lr, None)
                )
            leaves.append(steps_leaf(i, first, records))
    return leaves


def previous_draw(proof_id: str, epochs: list[int], per_epoch: int = 2) -> list[int]:
    """The interval draw of modeldeed's previous hardened verifier (what free-form grinding defeated): per epoch
    `per_epoch` intervals from SHA-256(tag ‖ proof id ‖ u64(epoch) ‖ u64(counter) ‖ u64(try)), proof id being
    the hash of all of proof.json, free-form fields included."""
    chosen = []
    for epoch in sorted(set(epochs)):
        pool = [i for i, e in enumerate(epochs) if e == epoch]
        if per_epoch >= len(pool):
            chosen.extend(pool)
            continue
        for counter in range(per_epoch):
            bound = len(pool)
            limit = (1 << 256) - (1 << 256) % bound
            attempt = 0
            while True:
                body = bytes.fromhex(proof_id) + epoch.to_bytes(8, "big") + counter.to_bytes(8, "big")
                value = int.from_bytes(tagged_digest(PREVIOUS_DRAW_TAG, body + attempt.to_bytes(8, "big")), "big")
                if value < limit:
                    break
                attempt += 1
            chosen.append(pool.pop(value % bound))
    return sorted(chosen)
