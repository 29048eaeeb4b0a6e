"""The verifier's checks, one function each, so a policy can switch them on and off or add its own.

A check takes the VerificationContext and returns a CheckResult; a FormatError raised inside it is
turned into a failure with that message. Integrity runs first and gates all others: nothing in a file
whose hash does not match proof.json is ever decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data import Dataset
from ..errors import FormatError, file_error
from ..training import augment_seed, batch_indices
from .distances import distances
from .initialisation import LayerTest, failing_layers, ks_tests
from .intervals import IntervalInfo, estimate_reference_distance, trained_vector, update_sizes
from .proof import MAX_DELTA_CHAIN, Proof
from .replay import ReplayMismatch, build_checked_model, replay
from .store import (
    MODEL_PREFIX,
    OPTIMIZER_PREFIX,
    RNG_CPU,
    RNG_CUDA,
    SCHEDULER_LR,
    SCHEDULER_STEP,
    ProofStore,
    batch_digest,
    batch_tensors,
)

if TYPE_CHECKING:
    from .verify import VerificationPolicy

log = logging.getLogger(__name__)

MAX_LISTED = 5  # per check, name this many failing steps/intervals, then count the rest


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "passed", "failed" or "skipped"
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class IntervalResult:
    """One replayed interval: its update, the replay's distance to the stored checkpoint, and the bound."""

    index: int
    start_step: int
    end_step: int
    epoch: int
    update: Mapping[str, float]
    error: Mapping[str, float]
    d_ref: Mapping[str, float]
    threshold: Mapping[str, float]  # absolute delta = normalised delta * d_ref
    accepted: bool

    @property
    def normalised_error(self) -> dict[str, float]:
        return {m: self.error[m] / self.d_ref[m] if self.d_ref[m] > 0 else float("inf") for m in self.error}

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "epoch": self.epoch,
            "update": dict(self.update),
            "error": dict(self.error),
            "normalised_error": self.normalised_error,
            "d_ref": dict(self.d_ref),
            "threshold": dict(self.threshold),
            "accepted": self.accepted,
        }


@dataclass
class VerificationContext:
    """What the checks share: the parsed proof, its files, the verifier's dataset, and results so far."""

    directory: Path
    proof: Proof
    proof_id: str
    data: Dataset
    policy: VerificationPolicy
    device: str = "cpu"
    trust_code: bool = False
    store: ProofStore = field(init=False)
    model: nn.Module | None = None
    intervals: list[IntervalInfo] = field(default_factory=list)
    layer_tests: list[LayerTest] = field(default_factory=list)
    interval_results: list[IntervalResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = ProofStore(self.directory, self.proof)

    def file(self, index: int) -> Path:
        return self.directory / self.proof.checkpoints[index].file


Check = Callable[[VerificationContext], CheckResult]


def listed(problems: list[str], what: str) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more {what}"]


def check_integrity(ctx: VerificationContext) -> CheckResult:
    """Counts consistent with epochs, steps and k; every file present with its SHA-256; tensors as declared."""
    proof, header = ctx.proof, ctx.proof.header
    config, k = header.config, header.checkpoint_every
    reasons = []
    expected_id = ctx.policy.expected_proof_id
    if expected_id is not None and expected_id != ctx.proof_id:
        reasons.append(f"proof id {ctx.proof_id} differs from the expected {expected_id} (proof.json was changed)")
    total = config.epochs * config.steps_per_epoch(header.dataset.size)
    if proof.total_steps != total:
        reasons.append(
            f"{proof.total_steps} steps recorded, but {config.epochs} epochs of {header.dataset.size} "
            f"samples in batches of {config.batch_size} make {total}"
        )
    step_problem = checkpoint_steps_problem([c.step for c in proof.checkpoints], proof.total_steps, k)
    if step_problem:
        reasons.append(step_problem)
    chain = 0
    for i, entry in enumerate(proof.checkpoints):
        chain = 0 if entry.base_step is None else chain + 1
        if entry.base_step is not None and (i == 0 or entry.base_step != proof.checkpoints[i - 1].step):
            reasons.append(f"{entry.file}: delta base step {entry.base_step} is not the previous checkpoint")
        if chain > min(header.keyframe_every, MAX_DELTA_CHAIN):
            reasons.append(f"{entry.file}: {chain} deltas since the last keyframe, more than {header.keyframe_every}")
    if reasons:
        return CheckResult("integrity", "failed", tuple(reasons))
    source = ctx.directory / "proof.json"
    ctx.model = build_checked_model(proof, trust_code=ctx.trust_code, source=source)
    expected = ctx.model.state_dict()
    params = dict(ctx.model.named_parameters())
    unknown = [n for n in header.trained_parameters if n not in params]
    if unknown:
        raise file_error(FormatError, source, f"trained_parameters names {unknown[:3]}, which the model lacks")
    ctx.store.samples()  # hash-checks and validates the stored samples
    ctx.intervals = update_sizes(
        proof, ctx.store, ctx.policy.metrics, lambda i, tensors: check_checkpoint_tensors(ctx, i, tensors, expected)
    )
    return CheckResult("integrity", "passed")


def checkpoint_steps_problem(found: list[int], total: int, k: int) -> str | None:
    """None if the checkpoints are exactly at 0, k, 2k, ... and total; else what is wrong."""
    count = total // k + 1 + (1 if total % k else 0)
    if len(found) == count and all(step == min(i * k, total) for i, step in enumerate(found)):
        return None
    rule = f"checkpoints must be at steps 0, {k}, 2*{k}, ... and {total}"
    if count > 2 * len(found) + 10:  # do not build a huge expected list for a proof that lists few
        return f"{rule}: {count} expected, {len(found)} listed"
    expected = set(range(0, total + 1, k)) | {total}
    missing = sorted(expected - set(found))[:MAX_LISTED]
    extra = sorted(set(found) - expected)[:MAX_LISTED]
    return f"{rule}: missing {missing}, unexpected {extra}" + ("" if missing or extra else ", order wrong")


def check_checkpoint_tensors(
    ctx: VerificationContext, index: int, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    path, step = ctx.file(index), ctx.proof.checkpoints[index].step
    params = dict(ctx.model.named_parameters()) if ctx.model is not None else {}
    trained = set(ctx.proof.header.trained_parameters)
    model_names = set()
    for key, value in tensors.items():
        if key.startswith(MODEL_PREFIX):
            name = key.removeprefix(MODEL_PREFIX)
            model_names.add(name)
            ref = expected.get(name)
            if ref is None or ref.shape != value.shape or ref.dtype != value.dtype:
                raise file_error(FormatError, path, f"tensor {name!r} does not match the architecture")
        elif key.startswith(OPTIMIZER_PREFIX):
            _, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition("/")
            if name not in trained or value.shape != params[name].shape:
                raise file_error(FormatError, path, f"optimizer state {key!r} does not fit a trained parameter")
        elif key in (RNG_CPU, RNG_CUDA):
            if value.dtype != torch.uint8 or value.dim() != 1:
                raise file_error(FormatError, path, f"{key!r} must be a 1-D uint8 RNG state")
        elif key == SCHEDULER_STEP:
            if value.dtype != torch.int64 or value.numel() != 1 or int(value) != step:
                raise file_error(FormatError, path, f"scheduler step must be {step}")
        elif key == SCHEDULER_LR:
            if value.dtype != torch.float64 or value.numel() != 1:
                raise file_error(FormatError, path, "scheduler lr must be one float64")
        else:
            raise file_error(FormatError, path, f"unexpected tensor {key!r}")
    if model_names != set(expected):
        raise file_error(FormatError, path, f"lacks model tensors {sorted(set(expected) - model_names)[:3]}")
    if not bool(torch.isfinite(trained_vector(tensors, ctx.proof)).all()):
        raise file_error(FormatError, path, "holds NaN or infinite weights")


def check_schedule(ctx: VerificationContext) -> CheckResult:
    """Every step's learning rate and augmentation seed are the declared schedule's; batches not oversized."""
    config = ctx.proof.header.config
    per_epoch = config.steps_per_epoch(ctx.proof.header.dataset.size)
    problems = []
    for step, record in enumerate(ctx.proof.steps):
        lr = config.lr_at(step // per_epoch)
        seed = augment_seed(config.seed, step) if config.augment else None
        if record.lr != lr:
            problems.append(f"step {step}: learning rate {record.lr!r} is not the declared schedule's {lr!r}")
        elif record.indices.size and record.augment_seed != seed:
            problems.append(f"step {step}: augmentation seed {record.augment_seed} is not the declared {seed}")
        elif record.indices.size > config.batch_size:
            problems.append(f"step {step}: {record.indices.size} dataset samples in a batch of {config.batch_size}")
    return result("schedule", listed(problems, "steps"))


def check_batch_order(ctx: VerificationContext) -> CheckResult:
    """Hardened: every step trains on exactly the seeded permutation's batch of dataset samples.

    Samples stored in the proof may only be appended to a complete seeded batch (a watermark's trigger
    images are); whether they are samples the owner committed to is the dataset-membership check's job.
    """
    config, n = ctx.proof.header.config, ctx.proof.header.dataset.size
    problems = []
    for step, record in enumerate(ctx.proof.steps):
        expected = batch_indices(config, n, step)
        if record.indices.size != expected.size or not (record.indices == expected).all():
            problems.append(f"step {step}: the batch is not the seeded batch order's")
    return result("batch_order", listed(problems, "steps"))


def check_data(ctx: VerificationContext) -> CheckResult:
    """The verifier's dataset is the proof's, and every step's batch hashes to the recorded SHA-256."""
    info, data = ctx.proof.header.dataset, ctx.data
    reasons = []
    if data.fingerprint != info.fingerprint:
        reasons.append(
            f"dataset fingerprint {data.fingerprint[:16]}... of {data.name} differs from the proof's "
            f"{info.fingerprint[:16]}... ({info.name}): not the data the proof claims"
        )
    if len(data) != info.size or data.input_shape != info.input_shape or data.num_classes != info.num_classes:
        reasons.append(
            f"dataset {data.name} has {len(data)} samples of shape {data.input_shape} in {data.num_classes} "
            f"classes; the proof's has {info.size} of {info.input_shape} in {info.num_classes}"
        )
        return result("data", reasons)
    samples = ctx.store.samples()
    problems = [
        f"step {step}: batch SHA-256 differs from the recorded one (the samples at its indices changed)"
        for step, record in enumerate(ctx.proof.steps)
        if batch_digest(*batch_tensors(record, data, samples)) != record.batch_sha256
    ]
    return result("data", reasons + listed(problems, "steps"))


def check_initialisation(ctx: VerificationContext) -> CheckResult:
    """W_0 passes a KS test per conv/linear tensor against the declared initialisation."""
    scheme = ctx.proof.header.initialisation["scheme"]
    if scheme == "unspecified":
        return result(
            "initialisation",
            ["W_0 declares no initialisation distribution (scheme 'unspecified'), so it cannot be tested"],
        )
    assert ctx.model is not None
    tensors = {
        k.removeprefix(MODEL_PREFIX): v for k, v in ctx.store.checkpoint(0).items() if k.startswith(MODEL_PREFIX)
    }
    ctx.layer_tests = ks_tests(ctx.model, tensors, scheme)
    if not ctx.layer_tests:
        return result("initialisation", [f"the model has no conv/linear tensor that {scheme} describes"])
    threshold, failing = failing_layers(ctx.layer_tests, ctx.policy.ks_alpha, ctx.policy.ks_family_wise)
    return result(
        "initialisation",
        listed(
            [
                f"W_0 tensor {t.name}: KS p = {t.p_value:.3g} < {threshold:.3g} against {t.distribution} ({scheme})"
                for t in failing
            ],
            "tensors",
        ),
    )


def check_replay(ctx: VerificationContext) -> CheckResult:
    """Replay the selected intervals; each must land within delta of the stored next checkpoint."""
    policy = ctx.policy
    chosen = policy.selector(ctx.intervals, policy.q, policy.metrics, ctx.proof_id)
    by_index = {i.index: i for i in ctx.intervals}
    problems = []
    for index in chosen:
        info = by_index[index]
        span = f"interval {index} (steps {info.start_step}-{info.end_step}, epoch {info.epoch})"
        try:
            replayed = replay(
                ctx.proof, ctx.store, ctx.data, index, trust_code=ctx.trust_code, device=ctx.device, model=ctx.model
            )
        except ReplayMismatch as exc:
            problems.append(f"{span}: {exc}")
            continue
        target = ctx.store.checkpoint(index + 1)
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
        over = [m for m in policy.metrics if not error[m] <= threshold[m]]
        ctx.interval_results.append(
            IntervalResult(
                index, info.start_step, info.end_step, info.epoch, info.update, error, d_ref, threshold, not over
            )
        )
        if over:
            problems.append(
                f"{span}: the replay ends too far from the stored checkpoint: "
                + "; ".join(
                    f"{m} distance {error[m]:.4g} > delta {threshold[m]:.4g} ({fraction(error[m], d_ref[m])} of d_ref, "
                    f"allowed {policy.delta[m]:.3g})"
                    for m in over
                )
            )
        log.info("replayed %s: %s", span, {m: f"{error[m]:.3g}" for m in policy.metrics})
    return result("replay", listed(problems, "problems"))


def fraction(value: float, reference: float) -> str:
    return f"{value / reference:.3g}" if reference > 0 else "inf"


def result(name: str, reasons: list[str]) -> CheckResult:
    return CheckResult(name, "failed" if reasons else "passed", tuple(reasons))
