"""Run a spoof end to end: forge, write the proof, judge it with the real verifiers, compare the cost.

The verdicts come from `pol.verify_proof` only: once with the reference policy (top-Q by update size, the
calibrated delta, the data the prover supplies) and once with the hardened one (`pol.hardened`). The
spoof's cost is set against honest training of the same model on the same data (`honest_training_cost`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelSpec
from ..pol.hardened import relative
from ..pol.policy import Hardening, VerificationPolicy
from ..pol.verify import Verdict, verify_proof
from ..training import TrainConfig
from .pol_spoof import ProofSpoof, SpoofCost, SpoofResult, cost_ratio
from .pol_spoof_adaptive import ChallengeGrinding, MomentumSteering, PartialTraining
from .pol_spoof_fang import BlindfoldTopQ, InfinitesimalUpdate
from .pol_spoof_proof import write_spoof_proof
from .pol_spoof_zhang import ZhangAttack1, ZhangAttack2, ZhangAttack3

SPOOFS: dict[str, type[ProofSpoof]] = {
    "zhang1": ZhangAttack1,
    "zhang2": ZhangAttack2,
    "zhang3": ZhangAttack3,
    "infinitesimal": InfinitesimalUpdate,
    "blindfold": BlindfoldTopQ,
    "steer-momentum": MomentumSteering,
    "partial-trained": PartialTraining,
    "grind-challenge": ChallengeGrinding,
}
PUBLISHED = ("zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold")
ADAPTIVE = ("steer-momentum", "partial-trained", "grind-challenge")


def make_spoof(method: str, **settings: Any) -> ProofSpoof:
    """The spoof named `method` (one of `SPOOFS`) with `settings`."""
    try:
        cls = SPOOFS[method]
    except KeyError:
        raise ModeldeedError(f"unknown spoof {method!r}; choose one of {', '.join(SPOOFS)}") from None
    return cls(**settings)


@dataclass(frozen=True)
class VerdictSummary:
    """What a verdict says about one proof: per-check status, reasons, and the replays' errors."""

    accepted: bool
    checks: dict[str, str]
    reasons: tuple[str, ...]
    replayed: int
    max_normalised_error: dict[str, float]  # error / d_ref, largest over the replayed intervals
    max_relative_error: float | None  # error / update size (l2), largest over the replayed intervals

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictSummary:
        errors: dict[str, float] = {}
        rel = None
        for interval in verdict.intervals:
            for m, v in interval.normalised_error.items():
                errors[m] = max(errors.get(m, 0.0), v)
            if "l2" in interval.error and "l2" in interval.update:
                value = relative(interval.error["l2"], interval.update["l2"])
                rel = value if rel is None else max(rel, value)
        return cls(
            verdict.accepted,
            {c.name: c.status for c in verdict.checks},
            verdict.reasons,
            len(verdict.intervals),
            errors,
            rel,
        )

    def failed(self) -> list[str]:
        return [name for name, status in self.checks.items() if status == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "checks": self.checks,
            "failed": self.failed(),
            "reasons": list(self.reasons),
            "replayed_intervals": self.replayed,
            "max_normalised_error": self.max_normalised_error,
            "max_relative_error": _finite(self.max_relative_error),
        }


def _finite(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else "inf"


@dataclass(frozen=True)
class SpoofReport:
    """One spoof, judged: where its proof is, what it cost against honest training, and both verdicts."""

    method: str
    proof: str
    proof_id: str
    spoof: SpoofResult
    honest_cost: SpoofCost | None
    reference: VerdictSummary
    hardened: VerdictSummary | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_ratio(self) -> dict[str, float | None] | None:
        return None if self.honest_cost is None else cost_ratio(self.spoof.cost, self.honest_cost)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "modeldeed.pol-spoof",
            "version": 1,
            "method": self.method,
            "proof": self.proof,
            "proof_id": self.proof_id,
            "spoof": self.spoof.to_json(),
            "honest_cost": None if self.honest_cost is None else self.honest_cost.to_json(),
            "cost_ratio": self.cost_ratio,
            "reference": self.reference.to_json(),
            "hardened": None if self.hardened is None else self.hardened.to_json(),
            **self.extra,
        }


def spoof_and_verify(
    spoof: ProofSpoof,
    model: nn.Module,
    spec: ModelSpec,
    data: Dataset,
    *,
    config: TrainConfig,
    out: str | Path,
    reference: VerificationPolicy | None = None,
    harden: bool = True,
    hardening: Hardening | None = None,
    honest_cost: SpoofCost | None = None,
    trust_code: bool = False,
) -> SpoofReport:
    """Forge a proof for `model` into `out`, verify it with the reference and the hardened policy.

    `reference` defaults to `VerificationPolicy.reference()` (the paper's: top-Q = 2 by update size, the
    default normalised delta, d_ref estimated per interval, the stored state trusted); `hardening` defaults
    to `Hardening()` (every hardened check on, added to `VerificationPolicy()` with the reference's delta and
    d_ref); `harden=False` skips the hardened verification.
    """
    result = spoof(model, spec, data, config=config, trust_code=trust_code)
    proof_id = write_spoof_proof(result, out)
    policy = reference or VerificationPolicy.reference()
    verdict = verify_proof(out, data, policy, device=spoof.device, trust_code=trust_code)
    hardened = None
    if harden:
        base = VerificationPolicy(delta=policy.delta, d_ref=policy.d_ref, metrics=policy.metrics)
        strict = (hardening or Hardening()).policy(base)
        hardened = VerdictSummary.of(verify_proof(out, data, strict, device=spoof.device, trust_code=trust_code))
    return SpoofReport(spoof.name, str(out), proof_id, result, honest_cost, VerdictSummary.of(verdict), hardened)
