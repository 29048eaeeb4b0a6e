"""Verifying a proof of learning: a policy of separable checks, and a verdict that says why.

Paper: Jia et al., "Proof-of-Learning: Definitions and Practice" (IEEE S&P 2021), Algorithm 2.
Threat model: the prover wrote every file of the proof; the verifier has the dataset the proof claims
and trusts its own copy of modeldeed and PyTorch. Checks (each a switch of VerificationPolicy):
integrity (schema, file hashes, counts; always on), schedule (recorded learning rates and seeds are the
declared ones), data (batches rebuilt from the dataset hash to the recorded digests), initialisation
(KS test of W_0), replay (per epoch the Q largest updates are re-executed and must land within delta),
and optionally batch_order (the hardened check that batches follow the seeded permutation).

Delta is normalised by d_ref, the distance between two independent training runs at the same step
(the paper's eps_repr < delta < d_ref): delta_abs = delta * d_ref. d_ref comes from a calibration, or
is estimated per interval from the checkpoint itself (see intervals.estimate_reference_distance).

Example:
    verdict = verify_proof("runs/p/proof", load_dataset("digits").train)
    print(verdict.accepted, verdict.reasons)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..errors import FormatError, ModeldeedError
from .checks import (
    Check,
    CheckResult,
    IntervalResult,
    VerificationContext,
    check_batch_order,
    check_data,
    check_initialisation,
    check_integrity,
    check_replay,
    check_schedule,
)
from .distances import METRICS, check_metrics
from .initialisation import LayerTest
from .intervals import IntervalInfo, IntervalSelector, top_q_per_epoch
from .proof import load_proof

log = logging.getLogger(__name__)

# Normalised delta (a fraction of d_ref). Replays with the recording's thread count are bit-identical; with
# another thread count the first interval after W_0 is chaotic: measured on Fashion-MNIST (lr 0.05, k = 100,
# 1 thread vs 2) it ends 0.20 (l1), 0.21 (l2), 0.30 (linf) and 0.046 (cos) of d_ref away for ResNet-20 and
# 0.017 / 0.029 / 0.069 / 0.0009 for the cnn; later intervals stay below 0.05. The defaults accept all of these
# with a margin of 1.4 to 2.2 and stay 2 to 10 times below d_ref; `calibrate` measures a tighter delta for a
# given proof and machine (see docs/pol.md).
DEFAULT_DELTA: dict[str, float] = {"l1": 0.3, "l2": 0.3, "linf": 0.5, "cos": 0.1}


@dataclass(frozen=True)
class VerificationPolicy:
    """Which checks run and with which thresholds; hardened checks are added as further switches."""

    check_schedule: bool = True
    check_data: bool = True
    check_initialisation: bool = True
    check_replay: bool = True
    check_batch_order: bool = False  # hardened: batches must be the seeded permutation, nothing stored
    q: int = 2  # per epoch and metric, replay the q largest updates; q <= 0: every interval
    metrics: tuple[str, ...] = METRICS
    delta: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DELTA))  # normalised by d_ref
    d_ref: Mapping[str, float] | None = None  # absolute, from a calibration; None: estimated per interval
    ks_alpha: float = 0.01
    ks_family_wise: bool = True  # Bonferroni over the tested tensors; False: each tensor at ks_alpha
    selector: IntervalSelector = top_q_per_epoch
    expected_proof_id: str | None = None  # the id the prover published; None: not checked
    extra_checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        missing = [m for m in self.metrics if m not in self.delta]
        if missing:
            raise ModeldeedError(f"no delta for metric(s) {missing}")
        bad = [m for m in self.metrics if not self.delta[m] > 0]
        if bad:
            raise ModeldeedError(f"delta must be > 0 for {bad}")
        if self.d_ref is not None and any(not self.d_ref.get(m, 0) > 0 for m in self.metrics):
            raise ModeldeedError(f"d_ref must be > 0 for every metric in {list(self.metrics)}")
        if not 0 < self.ks_alpha < 1:
            raise ModeldeedError(f"KS significance level must lie in (0, 1), got {self.ks_alpha}")

    def checks(self) -> list[Check]:
        chosen: list[Check] = []
        if self.check_schedule:
            chosen.append(check_schedule)
        if self.check_batch_order:
            chosen.append(check_batch_order)
        if self.check_data:
            chosen.append(check_data)
        if self.check_initialisation:
            chosen.append(check_initialisation)
        if self.check_replay:
            chosen.append(check_replay)
        return chosen + list(self.extra_checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [getattr(c, "__name__", repr(c)).removeprefix("check_") for c in self.checks()],
            "q": self.q,
            "metrics": list(self.metrics),
            "delta": {m: self.delta[m] for m in self.metrics},
            "d_ref": None if self.d_ref is None else {m: self.d_ref[m] for m in self.metrics},
            "ks_alpha": self.ks_alpha,
            "ks_family_wise": self.ks_family_wise,
            "selector": getattr(self.selector, "__name__", repr(self.selector)),
            "expected_proof_id": self.expected_proof_id,
        }


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

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "modeldeed.pol.verdict",
            "version": 1,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "proof_id": self.proof_id,
            "checks": [c.to_json() for c in self.checks],
            "intervals": [i.to_json() for i in self.intervals],
            "updates": [u.to_json() for u in self.updates],
            "initialisation": [t.to_json() for t in self.initialisation],
            "policy": dict(self.policy),
        }


def verify_proof(
    directory: str | Path,
    data: Dataset,
    policy: VerificationPolicy | None = None,
    *,
    device: str = "cpu",
    trust_code: bool = False,
) -> Verdict:
    """Run the policy's checks on the proof in `directory` against the verifier's copy of the training set.

    Problems with the proof give a rejecting Verdict; problems with the verifier's own inputs (no such
    directory, a user-code architecture without trust_code) raise ModeldeedError.
    """
    policy = policy or VerificationPolicy()
    directory = Path(directory)
    if not directory.is_dir():
        raise ModeldeedError(f"{directory}: proof directory not found")
    try:
        proof, proof_id = load_proof(directory)
    except FormatError as exc:
        failed = CheckResult("integrity", "failed", (str(exc),))
        return Verdict(False, (str(exc),), None, (failed,), policy=policy.to_json())
    if ":" in proof.header.spec.architecture and not trust_code:
        raise ModeldeedError(
            f"{directory}: the proof's model {proof.header.spec.architecture!r} is user code; "
            "verifying it imports that code, so pass trust_code=True (--trust-model-code)"
        )
    ctx = VerificationContext(directory, proof, proof_id, data, policy, device, trust_code)
    results = [run_check(check_integrity, ctx)]
    for check in policy.checks():
        if results[0].status != "passed":
            results.append(
                CheckResult(
                    getattr(check, "__name__", "check").removeprefix("check_"),
                    "skipped",
                    ("not run: the proof's integrity check failed",),
                )
            )
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
    )
    log.info("proof %s: %s", proof_id, "accepted" if verdict.accepted else f"rejected ({len(reasons)} reasons)")
    return verdict


def run_check(check: Check, ctx: VerificationContext) -> CheckResult:
    name = getattr(check, "__name__", "check").removeprefix("check_")
    try:
        return check(ctx)
    except FormatError as exc:
        return CheckResult(name, "failed", (str(exc),))
