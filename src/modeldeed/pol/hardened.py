"""Hardened proof-of-learning verification: the checks that stop the published spoofs, each on its own switch.

The reference verifier (Jia et al. 2021) trusts whatever data the prover supplies, accepts any W0 that a
Kolmogorov-Smirnov test cannot tell from a fresh draw, replays only the Q largest updates of each epoch and
accepts a replay within delta of the stored checkpoint. Zhang et al. (S&P 2022) and Fang et al. (EuroS&P 2023)
spoof it (see `modeldeed.attacks.pol_spoof*`) with a sort-trick W0, checkpoints on the straight line to W_T,
crafted samples, infinitesimally small steps, or honest steps placed where top-Q looks. Each check here
removes one of those freedoms:

- `dataset_membership`: every replayed sample, and every sample stored in the proof, is one of the samples
  the verifier trusts: the public dataset itself, or the exact samples the owner committed to before training
  (a Merkle root in a `TrainingStatement`), proven by a Merkle membership proof per sample. Stops crafted data.
- `initialisation_seed`: W0 equals, bit for bit, the initialisation built from the seed the proof declares
  (and the owner's statement commits to), and the batch order follows from the same seed (the PoL module's
  `batch_order` check is switched on with it). Stops the sort trick and free choice of batches.
- `random_intervals`: besides the Q largest, intervals drawn by Fiat-Shamir from the proof id (so the
  prover cannot know them before fixing every checkpoint) are replayed and must land within delta.
  Stops blindfold top-Q.
- `relative_error`: a replay must reproduce the recorded update itself: d(replayed, W_{t+k}) / d(W_t, W_{t+k})
  far below 1. A trajectory whose steps are not what its batches produce fails even when every step is tiny.
  Stops the infinitesimal update, and interpolated intervals wherever they are replayed.
- `update_profile`: consecutive updates that are parallel and of equal size (the straight line between two
  checkpoints, cut into equal pieces) do not occur in training. Flags interpolated trajectories.

Use `hardened_policy()` (all switches on) or `Hardening(...).policy(base)`; `modeldeed pol verify --hardened`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..crypto import tagged_digest
from ..data import Dataset
from ..errors import ModeldeedError
from ..models import build_model
from .checks import CheckResult, IntervalResult, VerificationContext, listed
from .commitment import SeedOpening, TrainingStatement
from .distances import distances
from .intervals import IntervalInfo, IntervalSelector, estimate_reference_distance, top_q_per_epoch, trained_vector
from .merkle import MerkleTree, leaf_hash, verify_membership
from .replay import ReplayMismatch, replay
from .store import MODEL_PREFIX
from .verify import VerificationPolicy

log = logging.getLogger(__name__)

FIAT_SHAMIR_TAG = b"modeldeed/pol-intervals/v1"
HARDENED_CHECKS = ("initialisation_seed", "random_intervals", "dataset_membership", "relative_error", "update_profile")


# ------------------------------------------------------------------------------------- Fiat-Shamir choice


def fiat_shamir_index(proof_id: str, label: int, counter: int, bound: int) -> int:
    """A uniform integer in [0, bound) from SHA-256(tag ‖ proof id ‖ u64be(label) ‖ u64be(counter) ‖ u64be(try))."""
    if bound < 1:
        raise ValueError("bound must be >= 1")
    limit = (1 << 256) - (1 << 256) % bound  # reject the top sliver so every residue is equally likely
    attempt = 0
    while True:
        digest = tagged_digest(
            FIAT_SHAMIR_TAG,
            bytes.fromhex(proof_id)
            + label.to_bytes(8, "big")
            + counter.to_bytes(8, "big")
            + attempt.to_bytes(8, "big"),
        )
        value = int.from_bytes(digest, "big")
        if value < limit:
            return value % bound
        attempt += 1


def fiat_shamir_intervals(intervals: Sequence[IntervalInfo], per_epoch: int, proof_id: str) -> list[int]:
    """`per_epoch` distinct intervals of every epoch, drawn from the proof id (all of them if fewer)."""
    chosen: list[int] = []
    for epoch in sorted({i.epoch for i in intervals}):
        members = [i.index for i in intervals if i.epoch == epoch]
        if per_epoch >= len(members):
            chosen.extend(members)
            continue
        pool = list(members)
        for counter in range(per_epoch):  # a Fisher-Yates draw without replacement
            pick = fiat_shamir_index(proof_id, epoch, counter, len(pool))
            chosen.append(pool.pop(pick))
    return sorted(chosen)


def top_q_and_fiat_shamir(per_epoch: int) -> IntervalSelector:
    """An `IntervalSelector` for `VerificationPolicy(selector=...)`: the paper's Q largest per epoch and metric,
    plus a Fiat-Shamir draw, all judged by the replay check (the `random_intervals` check reports them apart)."""

    def select(intervals: Sequence[IntervalInfo], q: int, metrics: Sequence[str], proof_id: str) -> list[int]:
        return sorted(
            set(top_q_per_epoch(intervals, q, metrics, proof_id))
            | set(fiat_shamir_intervals(intervals, per_epoch, proof_id))
        )

    select.__name__ = f"top_q_and_fiat_shamir_{per_epoch}"
    return select


# ------------------------------------------------------------------------------------------------ checks


def carried_statement(ctx: VerificationContext) -> tuple[TrainingStatement | None, SeedOpening | None]:
    """The statement and seed opening the proof carries (proof.json field `statement`), if any."""
    carried = getattr(ctx.proof.header, "statement", None)
    if carried is None:
        return None, None
    return carried.statement, carried.opening


@dataclass(frozen=True)
class InitialisationSeed:
    """W0 is the initialisation built from the declared (and committed) seed; batches follow the same seed."""

    statement: TrainingStatement | None = None
    __name__ = "check_initialisation_seed"

    def __call__(self, ctx: VerificationContext) -> CheckResult:
        header = ctx.proof.header
        seed = header.initialisation.get("seed")
        problems = []
        if seed is None:
            return CheckResult(
                "initialisation_seed",
                "failed",
                ("the proof declares no initialisation seed, so W_0 cannot be recomputed",),
            )
        if seed != header.config.seed:
            problems.append(
                f"the initialisation seed {seed} is not the batch-order seed {header.config.seed}: "
                "both must follow from the one committed seed"
            )
        if self.statement is not None:
            carried, opening = carried_statement(ctx)
            if carried is None or opening is None:
                problems.append("the proof carries no training statement and seed opening")
            else:
                if carried.id != self.statement.id:
                    problems.append(
                        f"the proof carries statement {carried.id[:16]}..., not the trusted {self.statement.id[:16]}..."
                    )
                if opening.seed != seed:
                    problems.append(f"the opened seed {opening.seed} is not the declared seed {seed}")
                if not self.statement.opens(opening):
                    problems.append("the seed opening does not open the trusted statement's seed commitment")
        try:
            expected = build_model(header.spec, seed=seed, trust_code=ctx.trust_code).state_dict()
        except ModeldeedError as exc:
            return CheckResult("initialisation_seed", "failed", (f"cannot build the declared model: {exc}",))
        stored = ctx.store.checkpoint(0)
        differ = [
            name
            for name, value in expected.items()
            if not torch.equal(stored.get(MODEL_PREFIX + name, torch.empty(0)), value)
        ]
        if differ:
            problems.append(
                f"W_0 is not the initialisation of seed {seed}: tensors {differ[:3]}"
                f"{' ...' if len(differ) > 3 else ''} differ"
            )
        return CheckResult("initialisation_seed", "failed" if problems else "passed", tuple(problems))


def replay_interval(ctx: VerificationContext, info: IntervalInfo) -> IntervalResult | str:
    """Replay one interval the way `check_replay` does; a string says why it could not be replayed."""
    policy = ctx.policy
    try:
        replayed = replay(
            ctx.proof, ctx.store, ctx.data, info.index, trust_code=ctx.trust_code, device=ctx.device, model=ctx.model
        )
    except ReplayMismatch as exc:
        return str(exc)
    target = ctx.store.checkpoint(info.index + 1)
    vector = trained_vector(target, ctx.proof)
    error = distances(
        trained_vector({MODEL_PREFIX + k: v for k, v in replayed.items()}, ctx.proof), vector, policy.metrics
    )
    d_ref = (
        dict(policy.d_ref)
        if policy.d_ref is not None
        else estimate_reference_distance(vector, target, ctx.proof, policy.metrics)
    )
    threshold = {m: policy.delta[m] * d_ref[m] for m in policy.metrics}
    accepted = all(error[m] <= threshold[m] for m in policy.metrics)
    return IntervalResult(
        info.index, info.start_step, info.end_step, info.epoch, info.update, error, d_ref, threshold, accepted
    )


@dataclass(frozen=True)
class RandomIntervals:
    """Replay `per_epoch` intervals per epoch drawn by Fiat-Shamir from the proof id; each must land within delta."""

    per_epoch: int = 2
    __name__ = "check_random_intervals"

    def __call__(self, ctx: VerificationContext) -> CheckResult:
        chosen = fiat_shamir_intervals(ctx.intervals, self.per_epoch, ctx.proof_id)
        done = {r.index: r for r in ctx.interval_results}
        by_index = {i.index: i for i in ctx.intervals}
        problems = []
        for index in chosen:
            info = by_index[index]
            span = f"interval {index} (steps {info.start_step}-{info.end_step}, epoch {info.epoch})"
            outcome = done.get(index)
            if outcome is None:
                outcome = replay_interval(ctx, info)
                if isinstance(outcome, str):
                    problems.append(f"{span}: {outcome}")
                    continue
                ctx.interval_results.append(outcome)
            problems.extend(
                f"{span}, drawn by Fiat-Shamir: {m} distance {outcome.error[m]:.4g} exceeds delta "
                f"{outcome.threshold[m]:.4g}"
                for m in outcome.error
                if not outcome.error[m] <= outcome.threshold[m]
            )
        log.info("Fiat-Shamir intervals %s", chosen)
        return CheckResult("random_intervals", "failed" if problems else "passed", tuple(listed(problems, "problems")))


@dataclass(frozen=True)
class RelativeError:
    """Every replayed interval reproduces its own update: d(replay, W_{t+k}) / d(W_t, W_{t+k}) <= the bound."""

    max_relative_error: float = 0.1
    metrics: tuple[str, ...] = ("l1", "l2", "linf")
    __name__ = "check_relative_error"

    def __call__(self, ctx: VerificationContext) -> CheckResult:
        if not ctx.interval_results:
            return CheckResult("relative_error", "failed", ("no interval was replayed (is replay switched off?)",))
        problems = []
        for r in ctx.interval_results:
            for m in self.metrics:
                if m not in r.error:
                    continue
                ratio = relative(r.error[m], r.update[m])
                if not ratio <= self.max_relative_error:
                    problems.append(
                        f"interval {r.index} (steps {r.start_step}-{r.end_step}): the replay misses the "
                        f"recorded update by {ratio:.3g} of its size in {m} (allowed "
                        f"{self.max_relative_error:g}): the steps do not produce this update"
                    )
                    break
        return CheckResult("relative_error", "failed" if problems else "passed", tuple(listed(problems, "intervals")))


def relative(error: float, update: float) -> float:
    if update > 0:
        return error / update
    return 0.0 if error == 0 else math.inf


@dataclass(frozen=True)
class UpdateProfile:
    """Flags a trajectory with more than `allowed` pairs of consecutive updates that are parallel and equal.

    Two k-step updates of training are never parallel to within `cosine_tolerance` and of equal length to
    within `size_tolerance`; consecutive pieces of one straight line between two checkpoints always are.
    """

    cosine_tolerance: float = 1e-4
    size_tolerance: float = 1e-3
    allowed: int = 1
    __name__ = "check_update_profile"

    def __call__(self, ctx: VerificationContext) -> CheckResult:
        straight = profile(ctx, self.cosine_tolerance, self.size_tolerance)
        if len(straight) <= self.allowed:
            return CheckResult("update_profile", "passed")
        spans = ", ".join(f"{a}-{a + 1}" for a in straight[:5]) + (" ..." if len(straight) > 5 else "")
        return CheckResult(
            "update_profile",
            "failed",
            (
                f"{len(straight)} pairs of consecutive intervals have parallel updates of equal size "
                f"(intervals {spans}; allowed {self.allowed}): checkpoints interpolated on a line, not trained",
            ),
        )


def profile(ctx: VerificationContext, cosine_tolerance: float, size_tolerance: float) -> list[int]:
    """Indices i where the updates of intervals i and i+1 are parallel and of equal l2 size."""
    straight = []
    previous_vector: torch.Tensor | None = None
    previous_update: torch.Tensor | None = None
    for index in range(len(ctx.proof.checkpoints)):
        vector = trained_vector(ctx.store.checkpoint(index), ctx.proof)
        if previous_vector is not None:
            update = vector - previous_vector
            if previous_update is not None:
                a, b = float(previous_update.norm()), float(update.norm())
                if a > 0 and b > 0:
                    cosine = float(previous_update @ update) / (a * b)
                    if cosine >= 1 - cosine_tolerance and abs(a - b) <= size_tolerance * max(a, b):
                        straight.append(index - 2)
            previous_update = update
        previous_vector = vector
    return straight


_TREES: dict[str, MerkleTree] = {}


def tree_of(data: Dataset) -> MerkleTree:
    """The Merkle tree over a dataset's exact samples (kept for the process: datasets do not change)."""
    tree = _TREES.get(data.fingerprint)
    if tree is None:
        tree = MerkleTree.from_samples(data.x, data.y)
        _TREES.clear()
        _TREES[data.fingerprint] = tree
    return tree


@dataclass(frozen=True)
class DatasetMembership:
    """Every sample of every replayed step, and every sample stored in the proof, is one of the trusted samples,
    by a Merkle membership proof.

    Trusted root: the owner's `statement` (committed before training), or, without one, the root of the
    verifier's own copy of the public dataset. The membership proofs are built from `committed` (the
    samples the prover supplies; default the verifier's dataset) and checked against the trusted root; a
    sample with no proof (not among the supplied samples) or a proof that does not reach the root fails.
    Stored samples are checked wherever they are used, so crafted samples cannot hide in intervals that
    happen not to be replayed.
    """

    statement: TrainingStatement | None = None
    committed: Dataset | None = None
    __name__ = "check_dataset_membership"

    def __call__(self, ctx: VerificationContext) -> CheckResult:
        pool = self.committed if self.committed is not None else ctx.data
        tree = tree_of(pool)
        root = bytes.fromhex(self.statement.merkle_root) if self.statement is not None else tree.root

        def member(x: torch.Tensor, y: int) -> bool:
            leaf = leaf_hash(x.numpy(), y)
            index = tree.find(leaf)
            return index is not None and verify_membership(root, leaf, tree.prove(index))

        samples = ctx.store.samples()
        foreign = (
            set()
            if samples is None
            else {n for n in range(len(samples.y)) if not member(samples.x[n], int(samples.y[n]))}
        )
        steps = replayed_steps(ctx)
        problems = []
        for step in steps:
            record = ctx.proof.steps[step]
            outside = sum(1 for i in record.indices if not member(ctx.data.x[int(i)], int(ctx.data.y[int(i)])))
            stored = sum(1 for n in record.stored if n in foreign)
            if outside or stored:
                problems.append(
                    f"step {step}: {outside + stored} of {len(record.indices) + len(record.stored)} samples are not "
                    f"among the trusted samples ({stored} of them stored in the proof)"
                )
        replayed = set(steps)
        elsewhere = [s for s, r in enumerate(ctx.proof.steps) if s not in replayed and foreign.intersection(r.stored)]
        if elsewhere:
            problems.append(
                f"{len(elsewhere)} steps outside the replayed intervals (first: step {elsewhere[0]}) use samples "
                "stored in the proof that are not among the trusted samples"
            )
        log.info(
            "dataset membership: %d replayed steps and %d stored samples checked",
            len(steps),
            0 if samples is None else len(samples.y),
        )
        if self.statement is not None and tree.root != root and not problems:
            problems.append("the supplied samples' Merkle root is not the committed one")
        return CheckResult(
            "dataset_membership", "failed" if problems else "passed", tuple(listed(problems, "problems"))
        )


def replayed_steps(ctx: VerificationContext) -> list[int]:
    """The steps of every replayed interval; every step when nothing was replayed."""
    if not ctx.interval_results:
        return list(range(ctx.proof.total_steps))
    steps: set[int] = set()
    for r in ctx.interval_results:
        steps.update(range(r.start_step, r.end_step))
    return sorted(steps)


# ------------------------------------------------------------------------------------------------ policy


@dataclass(frozen=True)
class Hardening:
    """The hardened checks and their settings; `policy(base)` adds them to a reference policy.

    Arguments:
        statement: the owner's training statement the verifier trusts (Merkle root and seed commitment);
            None: the public dataset itself is trusted and the seed is the proof's declared one.
        committed: the samples the prover supplies for membership proofs (default: the verifier's dataset).
        random_per_epoch: Fiat-Shamir intervals per epoch. Default: 2.
        max_relative_error: bound on d(replay, W_{t+k}) / d(W_t, W_{t+k}). Default: 0.1.
        allowed_straight_pairs: parallel equal consecutive updates tolerated. Default: 1.
        the six switches: each hardened check on or off (batch_order is the PoL module's own check).
    """

    statement: TrainingStatement | None = None
    committed: Dataset | None = None
    random_per_epoch: int = 2
    max_relative_error: float = 0.1
    allowed_straight_pairs: int = 1
    initialisation_seed: bool = True
    batch_order: bool = True
    random_intervals: bool = True
    dataset_membership: bool = True
    relative_error: bool = True
    update_profile: bool = True

    def __post_init__(self) -> None:
        if self.random_per_epoch < 1:
            raise ModeldeedError(f"random intervals per epoch must be >= 1, got {self.random_per_epoch}")
        if not self.max_relative_error > 0:
            raise ModeldeedError(f"the relative error bound must be > 0, got {self.max_relative_error}")

    def checks(self) -> tuple[Any, ...]:
        chosen: list[Any] = []
        if self.initialisation_seed:
            chosen.append(InitialisationSeed(self.statement))
        if self.random_intervals:
            chosen.append(RandomIntervals(self.random_per_epoch))
        if self.dataset_membership:
            chosen.append(DatasetMembership(self.statement, self.committed))
        if self.relative_error:
            chosen.append(RelativeError(self.max_relative_error))
        if self.update_profile:
            chosen.append(UpdateProfile(allowed=self.allowed_straight_pairs))
        return tuple(chosen)

    def policy(self, base: VerificationPolicy | None = None) -> VerificationPolicy:
        base = base or VerificationPolicy()
        return dataclasses.replace(
            base,
            check_batch_order=base.check_batch_order or self.batch_order,
            extra_checks=tuple(base.extra_checks) + self.checks(),
        )


def hardened_policy(base: VerificationPolicy | None = None, **settings: Any) -> VerificationPolicy:
    """The reference policy `base` (default `VerificationPolicy()`) with every hardened check switched on."""
    return Hardening(**settings).policy(base)
