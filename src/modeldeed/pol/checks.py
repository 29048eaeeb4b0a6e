"""The verifier's checks, one function each, so a policy can switch them on and off or add its own.

A check takes the VerificationContext and returns a CheckResult; a FormatError raised inside it is turned
into a failure with that message. Integrity runs first and gates all others: nothing in a file whose hash
does not match the listing is ever decoded. The checks read the proof through `ctx.source`, a whole proof
or the opened part of one; what an opened proof does not hold is not checked here (the challenge decides
what is opened, see `pol.hardened`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from ..errors import FormatError, file_error
from ..training import augment_seed, batch_indices
from .compare import Tolerance, compare
from .context import CheckResult, IntervalResult, VerificationContext, listed, result
from .initialisation import failing_layers, ks_tests
from .intervals import StraightLines, outliers, trained_vector, update_sizes
from .proof import MAX_DELTA_CHAIN
from .replay import ReplayMismatch, build_checked_model, optimizer_keys, replay
from .source import FullSource
from .state import (
    RNG_CPU,
    SCHEDULER_LR,
    SCHEDULER_STEP,
    model_tensors,
    state_digests,
    tensor_digest,
    tensor_rule,
)
from .store import batch_digest, batch_tensors

log = logging.getLogger(__name__)


def check_integrity(ctx: VerificationContext) -> CheckResult:
    """Counts consistent with epochs, steps and k; every file present with its SHA-256; tensors as declared."""
    source = ctx.source
    assert isinstance(source, FullSource)
    proof, header = source.proof, source.header
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
    prepare_model(ctx)
    source.samples()  # hash-checks and validates the stored samples
    digests: list[tuple[bytes, bytes]] = []
    frozen_digests: list[bytes] = []
    assert ctx.model is not None
    frozen = [n for n, _ in ctx.model.named_parameters() if n not in header.trained_parameters]
    lines = StraightLines()

    def inspect(index: int, tensors: Mapping[str, torch.Tensor]) -> None:
        check_checkpoint_tensors(ctx, index, tensors)
        digests.append(state_digests(tensors))
        model = model_tensors(tensors)
        frozen_digests.append(tensor_digest({n: model[n] for n in frozen}))
        lines.add(trained_vector(tensors, header.trained_parameters))

    ctx.intervals = update_sizes(
        source.checkpoint,
        source.checkpoint_steps,
        header.trained_parameters,
        config.steps_per_epoch(header.dataset.size),
        ctx.policy.metrics,
        inspect,
    )
    source.digests, source.frozen_digests, source.straight_pairs = digests, frozen_digests, lines.pairs
    return CheckResult("integrity", "passed")


def prepare_model(ctx: VerificationContext) -> None:
    """Build the architecture (sized first), check the trained parameters exist, and set the tensor rule."""
    header = ctx.source.header
    where = ctx.directory / "proof.json"
    ctx.model = build_checked_model(header.spec, trust_code=ctx.trust_code, source=where)
    params = dict(ctx.model.named_parameters())
    unknown = [n for n in header.trained_parameters if n not in params]
    if unknown:
        raise file_error(FormatError, where, f"trained_parameters names {unknown[:3]}, which the model lacks")
    ctx.source.set_rule(tensor_rule(ctx.model, header.trained_parameters, optimizer_keys(header)))


def checkpoint_steps_problem(found: list[int], total: int, k: int) -> str | None:
    """None if the checkpoints are exactly at 0, k, 2k, ... and total; else what is wrong."""
    count = total // k + 1 + (1 if total % k else 0)
    if len(found) == count and all(step == min(i * k, total) for i, step in enumerate(found)):
        return None
    rule = f"checkpoints must be at steps 0, {k}, 2*{k}, ... and {total}"
    if count > 2 * len(found) + 10:  # do not build a huge expected list for a proof that lists few
        return f"{rule}: {count} expected, {len(found)} listed"
    expected = set(range(0, total + 1, k)) | {total}
    missing = sorted(expected - set(found))[:5]
    extra = sorted(set(found) - expected)[:5]
    return f"{rule}: missing {missing}, unexpected {extra}" + ("" if missing or extra else ", order wrong")


def check_checkpoint_tensors(ctx: VerificationContext, index: int, tensors: Mapping[str, torch.Tensor]) -> None:
    """Every model tensor present, an RNG state, the schedule at this checkpoint's step, finite weights.

    Which tensors may appear with which dtype and shape was checked before decoding (`state.tensor_rule`).
    """
    assert ctx.model is not None
    step = ctx.source.checkpoint_steps[index]
    where = ctx.directory / f"checkpoint {index} (step {step})"
    names = set(model_tensors(tensors))
    missing = sorted(set(ctx.model.state_dict()) - names)
    if missing:
        raise file_error(FormatError, where, f"lacks model tensors {missing[:3]}")
    for key in (RNG_CPU, SCHEDULER_STEP, SCHEDULER_LR):
        if key not in tensors:
            raise file_error(FormatError, where, f"lacks {key!r}")
    if int(tensors[SCHEDULER_STEP]) != step:
        raise file_error(FormatError, where, f"scheduler step is {int(tensors[SCHEDULER_STEP])}, must be {step}")
    header = ctx.source.header
    if header.loop is not None:
        # a user's schedule and Adam's step count are re-derived from the settings, never taken on trust
        lr = header.lr_at_step(step)
        if float(tensors[SCHEDULER_LR]) != lr:
            raise file_error(
                FormatError,
                where,
                f"schedule position: learning rate {float(tensors[SCHEDULER_LR])!r}, the declared "
                f"schedule's at step {step} is {lr!r}",
            )
        for name, value in tensors.items():
            if name.startswith("optimizer/step/") and float(value) != float(step):
                raise file_error(FormatError, where, f"{name} counts {float(value):g} optimizer steps, not {step}")
    if not bool(torch.isfinite(trained_vector(tensors, ctx.source.header.trained_parameters)).all()):
        raise file_error(FormatError, where, "holds NaN or infinite weights")


def check_schedule(ctx: VerificationContext) -> CheckResult:
    """Every step's learning rate and augmentation seed are the declared schedule's; batches not oversized."""
    header = ctx.source.header
    config = header.config
    rates = header.learning_rates() if header.loop is not None else None
    per_epoch = config.steps_per_epoch(header.dataset.size)
    problems = []
    for step, record in ctx.source.records():
        lr = rates[step] if rates is not None and step < len(rates) else config.lr_at(step // per_epoch)
        seed = augment_seed(config.seed, step) if config.augment else None
        if record.lr != lr:
            problems.append(f"step {step}: learning rate {record.lr:g} is not the declared schedule's {lr:g}")
        elif record.augment_seed != seed:
            problems.append(f"step {step}: augmentation seed {record.augment_seed} is not the declared {seed}")
        elif record.indices.size > config.batch_size:
            problems.append(f"step {step}: {record.indices.size} dataset samples in a batch of {config.batch_size}")
    return result("schedule", listed(problems, "steps"))


def check_batch_order(ctx: VerificationContext) -> CheckResult:
    """Every step trains on exactly the seeded permutation's batch of dataset samples.

    Samples stored in the proof may only be appended to a complete seeded batch (a watermark's trigger
    images are); whether they are samples the owner committed to is the dataset-membership check's job.
    """
    header = ctx.source.header
    config, n = header.config, header.dataset.size
    problems = []
    for step, record in ctx.source.records():
        expected = batch_indices(config, n, step)
        if record.indices.size != expected.size or not (record.indices == expected).all():
            problems.append(f"step {step}: the batch is not the seeded batch order's")
    return result("batch_order", listed(problems, "steps"))


def check_data(ctx: VerificationContext) -> CheckResult:
    """The verifier's dataset is the proof's, and every step's batch hashes to the recorded SHA-256.

    Under the hardened policy only the steps of the intervals it replays are rebuilt (the recorded batch hashes
    of the others are, like their checkpoints, what the challenge samples): the cost stays with the challenge.
    """
    info, data = ctx.source.header.dataset, ctx.data
    reasons = []
    if data.fingerprint != info.fingerprint:
        reasons.append(
            f"dataset fingerprint {data.fingerprint[:16]}... of {data.name} differs from the proof's "
            f"{info.fingerprint[:16]}... ({info.name}): not the data the proof claims"
        )
    samples = ctx.source.samples()
    records = ctx.source.records()
    if ctx.policy.hardening is not None and not ctx.source.opened:
        steps = ctx.source.checkpoint_steps
        chosen = {s for i in selection(ctx) for s in range(steps[i], steps[i + 1])}
        records = ((s, r) for s, r in records if s in chosen)
    problems = [
        f"step {step}: batch SHA-256 differs from the recorded one (the samples at its indices changed)"
        for step, record in records
        if batch_digest(*batch_tensors(record, data, samples)) != record.batch_sha256
    ]
    return result("data", reasons + listed(problems, "steps"))


def check_initialisation(ctx: VerificationContext) -> CheckResult:
    """W_0 passes a KS test per conv/linear tensor against the declared initialisation."""
    scheme = ctx.source.header.initialisation["scheme"]
    if scheme == "unspecified":
        return result(
            "initialisation",
            ["W_0 declares no initialisation distribution (scheme 'unspecified'), so it cannot be tested"],
        )
    if not ctx.source.has_checkpoint(0):
        return CheckResult("initialisation", "skipped", ("W_0 is not opened: it is rebuilt from the seed",))
    assert ctx.model is not None
    ctx.layer_tests = ks_tests(ctx.model, model_tensors(ctx.source.checkpoint(0)), scheme)
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


# ----------------------------------------------------------------------------------------------- replay


def selection(ctx: VerificationContext) -> dict[int, tuple[str, ...]]:
    """The intervals to replay, each with why: the policy's selector (top-Q) and the hardened challenge."""
    policy = ctx.policy
    chosen: dict[int, list[str]] = {}
    if ctx.intervals and not ctx.source.opened:
        if policy.hardening is None:
            picks = policy.selector(ctx.intervals, policy.q, policy.metrics, ctx.proof_id)
        elif policy.hardening.top_q > 0:
            picks = outliers(ctx.intervals, policy.hardening.top_q)
        else:
            picks = []
        for index in picks:
            chosen.setdefault(index, []).append("top-q")
    if ctx.challenge is not None:
        for index in ctx.challenge.intervals:
            chosen.setdefault(index, []).append("challenge")
    return {i: tuple(chosen[i]) for i in sorted(chosen)}


def mode_of(ctx: VerificationContext) -> str:
    if ctx.policy.replay_mode == "reference":
        return "reference"
    return "exact" if ctx.exact else "tolerance"


def check_replay(ctx: VerificationContext) -> CheckResult:
    """Replay the selected intervals; each must reproduce the stored next checkpoint (see `pol.compare`)."""
    chosen = selection(ctx)
    problems = []
    bar = progress_bar(len(chosen), "replay", ctx.progress)
    try:
        for number, (index, why) in enumerate(chosen.items(), start=1):
            if bar is not None:
                bar.set_postfix_str(f"interval {index} ({number} of {len(chosen)})", refresh=False)
            outcome = replay_interval(ctx, index, why)
            if isinstance(outcome, str):
                problems.append(outcome)
            else:
                ctx.interval_results.append(outcome)
                problems.extend(f"{span(ctx, index, why)}: {p}" for p in outcome.problems)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not chosen:
        problems.append("no interval was selected for replay")
    return result("replay", listed(problems, "problems"))


def span(ctx: VerificationContext, index: int, why: tuple[str, ...] = ()) -> str:
    steps = ctx.source.checkpoint_steps
    per_epoch = ctx.source.header.config.steps_per_epoch(ctx.source.header.dataset.size)
    drawn = ", drawn by the challenge" if "challenge" in why else ""
    return f"interval {index} (steps {steps[index]}-{steps[index + 1]}, epoch {steps[index] // per_epoch}{drawn})"


def start_state(ctx: VerificationContext, index: int) -> dict[str, torch.Tensor]:
    """The stored state an interval starts from (an opened proof's W_0 is the one the seed makes)."""
    if ctx.source.has_checkpoint(index):
        return ctx.source.checkpoint(index)
    return initial_of(ctx)


def initial_of(ctx: VerificationContext) -> dict[str, torch.Tensor]:
    """W_0's whole state as the declared seed makes it (`state.initial_state`), built once per verification."""
    if ctx.initial is None:
        from .state import initial_state

        header = ctx.source.header
        ctx.initial = initial_state(
            header.spec, header.config, trust_code=ctx.trust_code, first_lr=header.lr_at_step(0)
        )
    return ctx.initial


def replay_interval(ctx: VerificationContext, index: int, why: tuple[str, ...] = ()) -> IntervalResult | str:
    """Replay one interval and compare; a string says why it could not be replayed."""
    assert ctx.model is not None
    source, header, policy = ctx.source, ctx.source.header, ctx.policy
    steps = source.checkpoint_steps
    first, end_step = steps[index], steps[index + 1]
    where = ctx.directory / f"checkpoint {index}"
    start = start_state(ctx, index)
    records = [(s, source.record(s)) for s in range(first, end_step)]
    try:
        replayed = replay(
            header,
            start,
            records,
            ctx.data,
            source.samples(),
            end_step=end_step,
            model=ctx.model,
            source=where,
            device=ctx.device,
            trust_code=ctx.trust_code,
        )
    except ReplayMismatch as exc:
        return f"{span(ctx, index, why)}: {exc}"
    mode = mode_of(ctx)
    per_epoch = header.config.steps_per_epoch(header.dataset.size)
    if not source.has_checkpoint(index + 1):
        # an opened proof without the end checkpoint: in exact mode its digests say everything
        if mode != "exact":
            return f"{span(ctx, index, why)}: its end checkpoint is not opened, and a replay here is not exact"
        digests = source.digests_of(index + 1)
        same = state_digests(replayed) == digests
        problems = () if same else ("the replay does not reproduce the committed next checkpoint bit for bit",)
        return IntervalResult(index, first, end_step, first // per_epoch, {}, {}, {}, {}, same, mode, {}, problems, why)
    known = {i.index: i for i in ctx.intervals}.get(index)
    if mode == "exact" and known is not None and state_digests(replayed) == source.digests_of(index + 1):
        # every bit reproduced (the digests were taken in the integrity pass): no need to decode the end again
        zero = {m: 0.0 for m in policy.metrics}
        return IntervalResult(
            index,
            first,
            end_step,
            first // per_epoch,
            known.update,
            zero,
            {},
            zero,
            True,
            mode,
            {},
            (),
            why,
            dict(known.update),
        )
    end = source.checkpoint(index + 1)
    bounds = Tolerance(
        mode,
        policy.metrics,
        policy.delta,
        policy.d_ref,
        policy.max_relative_error if mode == "tolerance" else None,
        policy.max_buffer_error if mode == "tolerance" else None,
        header.config.momentum,
    )
    names = [n for n, _ in ctx.model.named_parameters()]
    outcome = compare(replayed, end, start, header.trained_parameters, names, bounds)
    log.info("replayed interval %d (%s): %s", index, mode, {m: f"{outcome.error[m]:.3g}" for m in policy.metrics})
    return IntervalResult(
        index,
        first,
        end_step,
        first // per_epoch,
        outcome.update,
        outcome.error,
        outcome.d_ref,
        outcome.threshold,
        outcome.accepted,
        mode,
        outcome.state_error,
        outcome.problems,
        why,
        outcome.replayed_update,
    )


def check_final_model(ctx: VerificationContext) -> CheckResult:
    """The proof's last checkpoint holds the model in dispute, bit for bit (every tensor of its state_dict)."""
    wanted = ctx.policy.final_model
    assert wanted is not None
    last = len(ctx.source.checkpoint_steps) - 1
    if ctx.source.has_checkpoint(last):
        from .state import differing

        differ = differing(model_tensors(ctx.source.checkpoint(last)), wanted)
        if differ:
            return result(
                "final_model",
                [f"the proof's last checkpoint is not the model in dispute: {', '.join(differ[:4])} differ"],
            )
        return result("final_model", [])
    from .state import tensor_digest

    committed = ctx.source.digests_of(last)[0]
    if tensor_digest({k: v for k, v in wanted.items()}) != committed:
        return result("final_model", ["the committed last checkpoint is not the model in dispute (digests differ)"])
    return result("final_model", [])


def progress_bar(total: int, desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    """A tqdm bar with ETA on stderr (hidden when disabled or when stderr is not a terminal)."""
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="interval", disable=None, dynamic_ncols=True)
