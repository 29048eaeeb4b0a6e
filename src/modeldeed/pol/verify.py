"""Verifying a proof of learning: a policy of separable checks, and a verdict that says why.

Paper: Jia et al., "Proof-of-Learning: Definitions and Practice" (IEEE S&P 2021), Algorithm 2.
Threat model: the prover wrote every file of the proof; the verifier has the dataset the proof claims
and trusts its own copy of modeldeed and PyTorch. The checks (`pol.checks`, `pol.hardened`) run in this
order, each reported on its own: integrity (always; for an opened proof: every Merkle path), settings and
commitment (hardened), schedule, batch_order, data, dataset_membership (hardened), initialisation (KS; the
hardened policy replaces it by the exact initialisation_seed),
initialisation_seed and frozen_tensors (hardened), replay, update_profile (hardened), final_model (with
`final_model`), then the policy's extra checks.

Whether a replay must be bit-identical is decided once: the proof's environment record against this
process's (`pol.environment`); see `VerificationPolicy.replay_mode`.

Example:
    verdict = verify_proof("runs/p/proof", load_dataset("digits").train)
    print(verdict.accepted, verdict.reasons)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import Dataset
from ..errors import FormatError, ModeldeedError
from ..models import is_user_factory
from ..training import configure_determinism
from .checks import (
    check_batch_order,
    check_data,
    check_final_model,
    check_initialisation,
    check_integrity,
    check_replay,
    check_schedule,
)
from .context import Check, CheckResult, IntervalResult, VerificationContext, check_name
from .environment import current_environment, differences, model_dtype
from .hardened import (
    check_commitment,
    check_dataset_membership,
    check_frozen_tensors,
    check_initialisation_seed,
    check_settings,
    check_update_profile,
)
from .initialisation import LayerTest
from .intervals import IntervalInfo
from .loop import BUILTIN_STEP
from .policy import DEFAULT_DELTA, VerificationPolicy
from .proof import PROOF_FILE, load_proof
from .source import FullSource

if TYPE_CHECKING:
    from ..engine import Engine
    from .distributed import DatasetRef

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_DELTA", "Verdict", "VerificationPolicy", "checks_of", "verify_proof"]


@dataclass(frozen=True)
class Verdict:
    """Accepted iff every check passed; `reasons` says what failed, per check, naming steps and files."""

    accepted: bool
    reasons: tuple[str, ...]
    proof_id: str | None
    checks: tuple[CheckResult, ...]
    intervals: tuple[IntervalResult, ...] = ()  # the replayed ones
    updates: tuple[IntervalInfo, ...] = ()  # update size of every interval (the profile)
    initialisation: tuple[LayerTest, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    mode: str | None = None  # how replays were compared: exact, tolerance or reference
    environment: tuple[str, ...] = ()  # how the verifier's environment differs from the recorded one
    challenge: Mapping[str, Any] | None = None
    commitment: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "modeldeed.pol.verdict",
            "version": 2,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "proof_id": self.proof_id,
            "checks": [c.to_json() for c in self.checks],
            "mode": self.mode,
            "environment_differences": list(self.environment),
            "challenge": None if self.challenge is None else dict(self.challenge),
            "commitment": None if self.commitment is None else dict(self.commitment),
            "notes": list(self.notes),
            "intervals": [i.to_json() for i in self.intervals],
            "updates": [u.to_json() for u in self.updates],
            "initialisation": [t.to_json() for t in self.initialisation],
            "policy": dict(self.policy),
        }


def checks_of(policy: VerificationPolicy, opened: bool) -> list[Check]:
    """The checks a policy runs after integrity, in order."""
    hardened = policy.hardening
    chosen: list[Check] = []
    if hardened is not None:
        if hardened.settings:
            chosen.append(check_settings)
        chosen.append(check_commitment)
    if policy.check_schedule:
        chosen.append(check_schedule)
    if policy.check_batch_order:
        chosen.append(check_batch_order)
    if policy.check_data:
        chosen.append(check_data)
    if hardened is not None and hardened.dataset_membership:
        chosen.append(check_dataset_membership)
    exact_w0 = hardened is not None and hardened.initialisation_seed
    if policy.check_initialisation and not opened and not exact_w0:  # W_0 re-derived exactly needs no statistics
        chosen.append(check_initialisation)
    if hardened is not None and hardened.initialisation_seed:
        chosen.append(check_initialisation_seed)
    if hardened is not None and hardened.frozen_tensors:
        chosen.append(check_frozen_tensors)
    if policy.check_replay:
        chosen.append(check_replay)
    if hardened is not None and hardened.update_profile and not opened:
        chosen.append(check_update_profile)
    if policy.final_model is not None:
        chosen.append(check_final_model)
    return chosen + list(policy.extra_checks)


def verify_proof(
    directory: str | Path,
    data: Dataset,
    policy: VerificationPolicy | None = None,
    *,
    device: str = "cpu",
    trust_code: bool = False,
    progress: bool = False,
    engine: Engine | None = None,
    data_ref: DatasetRef | None = None,
) -> Verdict:
    """Run the policy's checks on the proof in `directory` (a proof, or an opened proof of `pol.opened`).

    `engine` (`modeldeed.engine`) runs the replays: None or the local engine here, one after another; a
    distributed one (Ray) one interval per task, where workers load the dataset named by `data_ref`
    (`pol.distributed`). The verdict is the same.

    Problems with the proof give a rejecting Verdict; problems with the verifier's own inputs (no such
    directory, a dataset that is not the proof's kind at all, a user-code architecture without trust_code)
    raise ModeldeedError.
    """
    from .opened import OPENED_FILE, load_opened

    policy = policy or VerificationPolicy()
    directory = Path(directory)
    if not directory.is_dir():
        raise ModeldeedError(f"{directory}: proof directory not found")
    opened = (directory / OPENED_FILE).exists() and not (directory / PROOF_FILE).exists()
    # a proof.json (or opened.json) that is not well-formed is bad input (FormatError: exit 2), not a rejection
    if opened:
        if policy.hardening is None:
            raise ModeldeedError(f"{directory}: an opened proof is verified with the hardened policy (--hardened)")
        source, proof_id = load_opened(directory, trust_code=trust_code)
    else:
        proof, proof_id = load_proof(directory)
        source = FullSource(directory, proof, trust_code=trust_code)
    header = source.header
    if is_user_factory(header.spec.architecture) and not trust_code:
        raise ModeldeedError(
            f"{directory}: the proof's model {header.spec.architecture!r} is user code; "
            "verifying it imports that code, so pass trust_code=True (--trust-model-code)"
        )
    if header.loop is not None and header.loop.step != BUILTIN_STEP and not trust_code:
        raise ModeldeedError(
            f"{directory}: the proof's training step {header.loop.step!r} is user code; replaying it imports and runs "
            "that code, so pass trust_code=True (--trust-model-code) only for code you trust"
        )
    check_dataset_kind(directory, header.dataset, data)
    ctx = VerificationContext(directory, source, proof_id, data, policy, device, trust_code, progress)
    ctx.engine, ctx.data_ref = engine, data_ref
    first = check_integrity if not opened else source.check_integrity  # type: ignore[attr-defined]
    results = [run_check(first, ctx)]
    if results[0].status == "passed":
        decide_mode(ctx)
    for check in checks_of(policy, opened):
        if results[0].status != "passed":
            results.append(CheckResult(check_name(check), "skipped", ("not run: the proof's integrity check failed",)))
        else:
            results.append(run_check(check, ctx))
    reasons = tuple(f"{r.name}: {reason}" for r in results if r.status == "failed" for reason in r.reasons)
    verdict = Verdict(
        not reasons,
        reasons,
        proof_id,
        tuple(results),
        tuple(ctx.interval_results),
        tuple(ctx.intervals),
        tuple(ctx.layer_tests),
        policy.to_json(),
        mode=None if not ctx.interval_results else ctx.interval_results[0].mode,
        environment=tuple(ctx.environment_differences),
        challenge=None if ctx.challenge is None else ctx.challenge.to_json(),
        commitment=None if ctx.commitment is None else {"id": ctx.commitment.id, **ctx.commitment.to_json()},
        notes=tuple(ctx.notes),
    )
    log.info("proof %s: %s", proof_id, "accepted" if verdict.accepted else f"rejected ({len(reasons)} reasons)")
    return verdict


def check_dataset_kind(directory: Path, info: Any, data: Dataset) -> None:
    """A dataset of another size, shape or class count cannot be the proof's: bad input, not a rejection."""
    if len(data) != info.size or data.input_shape != info.input_shape or data.num_classes != info.num_classes:
        raise ModeldeedError(
            f"{directory}: the dataset given ({data.name}: {len(data)} samples of {list(data.input_shape)}, "
            f"{data.num_classes} classes) is not the one this proof was trained on ({info.name}: {info.size} samples "
            f"of {list(info.input_shape)}, {info.num_classes} classes); pass the proof's dataset"
        )


def decide_mode(ctx: VerificationContext) -> None:
    """Exact replay when the environment matches (or the policy demands it), else the tolerance."""
    assert ctx.model is not None
    header = ctx.source.header
    configure_determinism(header.config.deterministic)  # as the replay will run, so the record compares like with like
    here = current_environment(ctx.device, model_dtype(ctx.model), header.config.deterministic)
    ctx.environment_differences = differences(header.environment, here)
    mode = ctx.policy.replay_mode
    ctx.exact = mode == "exact" or (mode == "auto" and not ctx.environment_differences)
    if mode == "auto" and ctx.environment_differences:
        ctx.notes.append(
            "replays compared within the tolerance, not bit for bit: the environment differs from the recorded one ("
            + "; ".join(ctx.environment_differences)
            + "); the record is the prover's word, so a prover can steer each replayed interval by up to the "
            "tolerance"
        )


def run_check(check: Check, ctx: VerificationContext) -> CheckResult:
    try:
        return check(ctx)
    except FormatError as exc:
        return CheckResult(check_name(check), "failed", (str(exc),))
