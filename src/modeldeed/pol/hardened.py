"""Hardened proof-of-learning verification: nothing the prover states is trusted unless re-derived or committed.

The reference verifier (Jia et al. 2021) trusts whatever settings, data, W_0 and stored state the prover
supplies and replays only the largest updates. Each check here takes one of those freedoms away (the
security argument, with what each check assumes, is in docs/pol-spoofing.md):

- `settings`: every setting in the proof (architecture, initialisation, seed, hyper-parameters, k, dataset,
  trained parameters) is the training statement's, made before training; without a statement, every
  parameter must be trained (a proof may not declare most of the model untouched).
- `commitment`: the proof's Merkle root over checkpoints and step records (and the published commitment, if
  given); the challenge is drawn from it (and from the registry's beacon): `pol.challenge`.
- `dataset_membership`: the verifier's dataset is the committed one, and every stored sample a step uses is a
  committed trigger sample (stored samples 0 .. M-1, the statement's trigger root).
- `initialisation_seed`: W_0 is the state the seed makes, every tensor of it: `build_model(spec, seed)`, no
  momentum, the run's RNG seeded from the seed, the schedule at step 0. The batch order follows from the seed
  as well (`batch_order`).
- `frozen_tensors`: parameters that are not trained are W_0's, bit for bit, in every checkpoint.
- `replay` (the shared check) then replays the challenged intervals (plus, on a full proof, the top-q updates,
  as an addition only) and re-derives the whole next state.
- `update_profile`: a heuristic kept from the first hardening: equal, parallel consecutive updates are
  straight-line interpolation, not training.
"""

from __future__ import annotations

import logging
import math

import torch

from ..files import canonical_json
from .challenge import derive_challenge
from .checks import initial_of
from .commitment import ProofCommitment, make_commitment
from .context import CheckResult, VerificationContext, listed, result
from .merkle import MerkleTree
from .source import FullSource
from .state import differing, model_tensors, state_digests, tensor_digest
from .statement import SeedOpening, TrainingStatement

log = logging.getLogger(__name__)

HARDENED_CHECKS = (
    "settings",
    "commitment",
    "batch_order",
    "dataset_membership",
    "initialisation_seed",
    "frozen_tensors",
    "update_profile",
)


def hardening_of(ctx: VerificationContext):  # type: ignore[no-untyped-def]
    assert ctx.policy.hardening is not None
    return ctx.policy.hardening


def all_parameters(ctx: VerificationContext) -> list[str]:
    assert ctx.model is not None
    return [name for name, _ in ctx.model.named_parameters()]


def statement_in_force(ctx: VerificationContext) -> tuple[TrainingStatement | None, SeedOpening | None]:
    """The trusted statement (with the opening the proof carries), or the proof's own when none is trusted."""
    carried = ctx.source.header.statement
    trusted = hardening_of(ctx).statement
    if trusted is not None:
        return trusted, carried.opening if carried is not None else None
    if carried is not None:
        return carried.statement, carried.opening
    return None, None


def check_settings(ctx: VerificationContext) -> CheckResult:
    """The proof's settings are the statement's, all of them; the seed opening opens its commitment."""
    header = ctx.source.header
    trusted = hardening_of(ctx).statement
    carried = header.statement
    params = all_parameters(ctx)
    problems: list[str] = []
    statement, opening = statement_in_force(ctx)
    if trusted is not None and carried is None:
        problems.append("the proof carries no training statement and seed opening")
    if trusted is not None and carried is not None and carried.statement.id != trusted.id:
        problems.append(
            f"the proof carries statement {carried.statement.id[:16]}..., not the trusted {trusted.id[:16]}..."
        )
    if statement is None:
        ctx.notes.append(
            "no training statement: the settings are the prover's own, not fixed before training (give --statement)"
        )
        if list(header.trained_parameters) != params:
            problems.append(trained_set_problem(header.trained_parameters, params, None))
        return result("settings", problems)
    if trusted is None:
        ctx.notes.append(
            f"the proof's own statement {statement.id[:16]}... was used: it binds the settings, but nothing here "
            "shows it was made before training (give --statement with a registered statement)"
        )
    if opening is not None and not statement.opens(opening):
        problems.append("the seed opening does not open the statement's seed commitment")
    if opening is not None:
        problems.extend(settings_problems(statement, opening, header, params))
    return result("settings", problems)


def trained_set_problem(declared: tuple[str, ...] | list[str], expected: list[str], statement: str | None) -> str:
    missing = [n for n in expected if n not in declared]
    where = f"the statement lists {len(expected)}" if statement else "without a statement that says otherwise, all are"
    return (
        f"the proof trains {len(declared)} of the model's parameters ({', '.join(list(declared)[:3])}"
        f"{' ...' if len(declared) > 3 else ''}); {where} trained (not trained here: "
        f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})"
    )


def settings_problems(
    statement: TrainingStatement,
    opening: SeedOpening,
    header,
    params: list[str],  # type: ignore[no-untyped-def]
) -> list[str]:
    """Every difference between the proof's settings and the statement's."""
    problems = []
    spec = statement.spec
    if header.spec.architecture != spec.architecture or canonical_json(header.spec.arguments) != canonical_json(
        spec.arguments
    ):
        problems.append(
            f"architecture {header.spec.architecture} {header.spec.arguments} is not the statement's "
            f"{spec.architecture} {spec.arguments}"
        )
    if header.initialisation["scheme"] != statement.initialisation.scheme:
        problems.append(
            f"initialisation {header.initialisation['scheme']} is not the statement's {statement.initialisation.scheme}"
        )
    if header.initialisation["seed"] != opening.seed or header.config.seed != opening.seed:
        problems.append(
            f"the proof's seeds (initialisation {header.initialisation['seed']}, batch order {header.config.seed}) "
            f"are not the committed seed {opening.seed}"
        )
    declared = statement.config(opening.seed).to_json()
    actual = header.config.to_json()
    differ = sorted(k for k in set(declared) | set(actual) if declared.get(k) != actual.get(k))
    if differ:
        problems.append(
            "training settings differ from the statement's: "
            + ", ".join(f"{k} {actual.get(k)!r} (statement: {declared.get(k)!r})" for k in differ[:5])
        )
    if statement.loop is None and header.loop is not None:
        problems.append("the proof replays a user's own training step, the statement declares modeldeed's SGD step")
    elif statement.loop is not None and not statement.loop.same_as(header.loop):
        problems.append(loop_difference(statement.loop, header.loop))
    if header.checkpoint_every != statement.checkpoint_every:
        problems.append(f"k = {header.checkpoint_every}, the statement's is {statement.checkpoint_every}")
    d = statement.dataset
    if (header.dataset.size, list(header.dataset.input_shape), header.dataset.num_classes) != (
        d.size,
        d.input_shape,
        d.num_classes,
    ):
        problems.append(
            f"dataset of {header.dataset.size} samples {list(header.dataset.input_shape)} in "
            f"{header.dataset.num_classes} classes, the statement's has {d.size} {d.input_shape} in {d.num_classes}"
        )
    expected = [p for p in params if statement.trained_parameters is None or p in statement.trained_parameters]
    unknown = sorted(set(statement.trained_parameters or ()) - set(params))
    if unknown:
        problems.append(f"the statement trains parameters the model lacks: {unknown[:3]}")
    if list(header.trained_parameters) != expected:
        problems.append(trained_set_problem(header.trained_parameters, expected, "statement"))
    return problems


def loop_difference(declared, actual) -> str:  # type: ignore[no-untyped-def]
    """Which of the own-loop settings (step function, optimizer, schedule, accumulation, clipping) differ."""
    if actual is None:
        return "the statement declares a user's own training step, the proof replays modeldeed's SGD step"
    a, d = actual.to_json(), declared.to_json()
    differ = []
    for key in sorted(set(a) | set(d)):
        if isinstance(d.get(key), dict) and isinstance(a.get(key), dict):
            inner = sorted(k for k in set(a[key]) | set(d[key]) if a[key].get(k) != d[key].get(k))
            differ.extend(f"{key}.{k} {a[key].get(k)!r} (statement: {d[key].get(k)!r})" for k in inner)
        elif a.get(key) != d.get(key):
            differ.append(f"{key} {a.get(key)!r} (statement: {d.get(key)!r})")
    return "own-loop settings differ from the statement's: " + ", ".join(differ[:5])


def check_commitment(ctx: VerificationContext) -> CheckResult:
    """The commitment (recomputed from a full proof; an opened proof's was checked when it was read) matches the
    published one if given, and the challenge is drawn from it."""
    hardening = hardening_of(ctx)
    source = ctx.source
    problems = []
    if isinstance(source, FullSource):
        commitment, _ = make_commitment(source.proof, source.digests)
    else:
        commitment = source.commitment  # type: ignore[attr-defined]
    ctx.commitment = commitment
    expected: ProofCommitment | None = hardening.commitment
    if expected is not None and expected.to_json() != commitment.to_json():
        differ = [k for k in commitment.to_json() if commitment.to_json()[k] != expected.to_json()[k]]
        problems.append(
            f"the proof does not match the published commitment {expected.id[:16]}...: {', '.join(differ)} differ"
        )
    statement = hardening.statement
    if statement is not None and commitment.statement_id != statement.id:
        problems.append(
            f"the commitment names statement {commitment.statement_id}, not the trusted {statement.id[:16]}..."
        )
    beacon = hardening.beacon
    if hardening.receipts is not None:
        from .registration import bind

        binding = bind(hardening.receipts, commitment, statement_in_force(ctx)[0])
        problems.extend(binding.problems)
        ctx.notes.extend(binding.notes)
        beacon = binding.beacon if binding.beacon is not None else beacon
    ctx.challenge = derive_challenge(
        bytes.fromhex(commitment.root),
        commitment.intervals,
        soundness_bits=hardening.soundness_bits,
        min_fabricated=hardening.min_fabricated,
        beacon=beacon,
    )
    ctx.notes.append("challenge: " + ctx.challenge.describe())
    if source.opened:
        missing = [i for i in ctx.challenge.intervals if not source.has_record(source.checkpoint_steps[i])]
        if missing:
            problems.append(
                f"intervals {missing[:5]} of the challenge are not opened (opened for another challenge or "
                "soundness level?)"
            )
    log.info("commitment %s, challenge %s", commitment.id, list(ctx.challenge.intervals))
    return result("commitment", problems)


def check_dataset_membership(ctx: VerificationContext) -> CheckResult:
    """The dataset is the committed one; every stored sample a step uses is one of the committed triggers."""
    statement, _ = statement_in_force(ctx)
    problems = []
    if statement is not None:
        root = tree_of(ctx.data).root.hex()
        if root != statement.dataset.merkle_root:
            problems.append(
                f"the verifier's dataset ({ctx.data.name}) has Merkle root {root[:16]}..., the statement commits to "
                f"{statement.dataset.merkle_root[:16]}...: not the committed samples"
            )
    triggers = statement.triggers if statement is not None else None
    allowed = triggers.count if triggers is not None else 0
    outside = [step for step, record in ctx.source.records() if record.stored and max(record.stored) >= allowed]
    if outside:
        what = f"the {allowed} committed trigger samples" if triggers is not None else "committed samples (none are)"
        problems.append(
            f"{len(outside)} steps (first: step {outside[0]}) train on samples stored in the proof that are not "
            f"among {what}"
        )
    samples = ctx.source.samples()
    if triggers is not None and samples is not None:
        problems.extend(trigger_problems(ctx, triggers, samples))
    return result("dataset_membership", listed(problems, "problems"))


def trigger_problems(ctx: VerificationContext, triggers, samples) -> list[str]:  # type: ignore[no-untyped-def]
    """Stored samples 0 .. M-1 are the committed triggers (a full proof stores them all; an opened one proves
    each one it holds with a Merkle path)."""
    if isinstance(ctx.source, FullSource):
        if len(samples.y) < triggers.count:
            return [f"the proof stores {len(samples.y)} samples, fewer than the {triggers.count} committed triggers"]
        root = MerkleTree.from_samples(samples.x[: triggers.count], samples.y[: triggers.count]).root.hex()
        if root != triggers.merkle_root:
            return ["the proof's first stored samples are not the committed trigger samples (Merkle roots differ)"]
        return []
    return ctx.source.trigger_problems(triggers)  # type: ignore[attr-defined]


_TREES: dict[str, MerkleTree] = {}


def tree_of(data) -> MerkleTree:  # type: ignore[no-untyped-def]
    """The Merkle tree over a dataset's exact samples (kept for the process: datasets do not change)."""
    tree = _TREES.get(data.fingerprint)
    if tree is None:
        tree = MerkleTree.from_samples(data.x, data.y)
        _TREES.clear()
        _TREES[data.fingerprint] = tree
    return tree


def check_initialisation_seed(ctx: VerificationContext) -> CheckResult:
    """W_0 is the whole state the seed makes: weights and buffers, no momentum, the seeded RNG, step 0."""
    header = ctx.source.header
    seed = header.initialisation.get("seed")
    if seed is None:
        return result("initialisation_seed", ["the proof declares no initialisation seed, so W_0 cannot be recomputed"])
    problems = []
    if seed != header.config.seed:
        problems.append(
            f"the initialisation seed {seed} is not the batch-order seed {header.config.seed}: both must follow "
            "from the one committed seed"
        )
    expected = initial_of(ctx)
    if ctx.source.has_checkpoint(0):
        stored = ctx.source.checkpoint(0)
        differ = differing(stored, expected)
        momentum = [n for n in differ if n.startswith("optimizer/")]
        if momentum:
            problems.append(f"W_0 holds optimizer state ({momentum[0]} ...); a fresh optimizer has none")
        rest = [n for n in differ if not n.startswith("optimizer/")]
        if rest:
            problems.append(
                f"W_0 is not the state seed {seed} makes: {', '.join(rest[:3])}{' ...' if len(rest) > 3 else ''} differ"
            )
    elif ctx.source.digests_of(0) != state_digests(expected):
        problems.append(f"the committed W_0 is not the state seed {seed} makes (digests differ)")
    return result("initialisation_seed", problems)


def check_frozen_tensors(ctx: VerificationContext) -> CheckResult:
    """Parameters that are not trained are W_0's, bit for bit, at every checkpoint the verifier holds."""
    header = ctx.source.header
    frozen = [n for n in all_parameters(ctx) if n not in header.trained_parameters]
    if not frozen:
        return result("frozen_tensors", [])
    expected = initial_of(ctx)
    reference = tensor_digest({n: model_tensors(expected)[n] for n in frozen})
    known = getattr(ctx.source, "frozen_digests", None) or []  # a full proof's, from the integrity pass
    changed = []
    for index in range(len(ctx.source.checkpoint_steps)):
        if index < len(known):
            if known[index] == reference:
                continue
        elif not ctx.source.has_checkpoint(index):
            continue
        tensors = model_tensors(ctx.source.checkpoint(index))
        if tensor_digest({n: tensors[n] for n in frozen}) != reference:
            names = [n for n in frozen if not torch.equal(tensors[n], model_tensors(expected)[n])]
            changed.append(f"checkpoint {index}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
    if changed:
        return result(
            "frozen_tensors",
            [f"parameters that are not trained differ from W_0's (they may not move): {'; '.join(changed[:3])}"],
        )
    return result("frozen_tensors", [])


def check_update_profile(ctx: VerificationContext) -> CheckResult:
    """Flags more than `allowed` pairs of consecutive updates that are parallel and of equal size (a heuristic:
    pieces of one straight line between two checkpoints always are; two k-step updates of training never)."""
    if ctx.source.opened:
        return CheckResult("update_profile", "skipped", ("an opened proof holds only the challenged checkpoints",))
    allowed = hardening_of(ctx).allowed_straight_pairs
    straight = list(getattr(ctx.source, "straight_pairs", []))
    if len(straight) <= allowed:
        return result("update_profile", [])
    spans = ", ".join(f"{a}-{a + 1}" for a in straight[:5]) + (" ..." if len(straight) > 5 else "")
    return result(
        "update_profile",
        [
            f"{len(straight)} pairs of consecutive intervals have parallel updates of equal size (intervals "
            f"{spans}; allowed {allowed}): checkpoints interpolated on a line, not trained"
        ],
    )


def relative(error: float, update: float) -> float:
    if update > 0:
        return error / update
    return 0.0 if error == 0 else math.inf
