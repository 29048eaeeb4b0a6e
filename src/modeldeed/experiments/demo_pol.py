"""The demo's proof-of-learning part: the owner's statement, the owner's proof judged, and every spoof judged.

Each verdict is kept with what its figures need: the replay error of every replayed interval (against delta,
and against the interval's own update size, which the hardened verifier bounds) and the update size of every
interval (the update profile). Verdicts come from `pol.verify_proof` only.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Dataset, DataSplits
from ..models import ModelSpec
from ..progress import ProgressCallback, Tracker, Work
from ..training import TrainConfig
from .plan import SPOOF_EPOCHS

log = logging.getLogger(__name__)

SPOOF_METHODS = ("zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold")
# Attack I with the reference's 10 rounds of 100 L-BFGS iterations takes ~8 minutes here; the demo runs one
# round of 20 (the report says so). `modeldeed attack pol-spoof --method zhang1` has the reference settings.
DEMO_SPOOF_SETTINGS: dict[str, dict[str, Any]] = {"zhang1": {"rounds": 1, "iterations": 20}}


def owner_statement(
    train: Dataset,
    hooks: list[Any],
    config: TrainConfig,
    spec: ModelSpec,
    k: int,
    key_ids: tuple[str, ...],
    demonstration_seed: int | None = None,
) -> tuple[Any, Any, Any]:
    """Before training, the owner commits to every setting of the run, the exact training samples and the trigger
    images the marking hooks will append (`pol.statement`).

    The seed commitment's nonce comes from `secrets`, or, for a reproducible demonstration run, from
    `demonstration_seed` (then the commitment hides nothing from whoever knows that seed).
    """
    from ..pol.statement import TriggerSet, make_statement

    triggers = TriggerSet(
        torch.cat([h.images.cpu() for h in hooks]), torch.cat([h.labels.cpu() for h in hooks]), key_ids
    )
    nonce = None
    if demonstration_seed is not None:
        nonce = hashlib.sha256(b"modeldeed demo: statement nonce" + demonstration_seed.to_bytes(8, "big")).digest()
    statement, opening = make_statement(train, config, spec, checkpoint_every=k, triggers=triggers, nonce=nonce)
    return statement, opening, triggers


def attach_statement(run: Path, statement: Any, opening: Any) -> None:
    """Keep the owner's statement and seed opening beside the proof (published before training, in practice)."""
    from ..pol.statement import save_opening, save_statement

    save_statement(run / "statement.json", statement, force=True)
    save_opening(run / "seed_opening.json", opening, force=True)


def judged(verdict: Any) -> dict[str, Any]:
    """A verdict's summary plus the per-interval numbers the report draws."""
    from ..attacks.pol_spoof_report import VerdictSummary

    doc = VerdictSummary.of(verdict).to_json()
    doc["replays"] = [
        {
            "index": r.index,
            "start_step": r.start_step,
            "end_step": r.end_step,
            "normalised_error": {m: _finite(v) for m, v in r.normalised_error.items()},
            "normalised_delta": {
                m: _finite(r.threshold[m] / r.d_ref[m]) if r.d_ref.get(m, 0) > 0 else None for m in r.error
            },
            "relative_error": {m: _finite(v) for m, v in r.relative_error.items()},
        }
        for r in verdict.intervals
    ]
    doc["profile"] = [
        {"index": u.index, "start_step": u.start_step, "end_step": u.end_step, "l2": float(u.update["l2"])}
        for u in verdict.updates
        if "l2" in u.update
    ]
    return doc


def verify_owner_proof(proof: Path, train: Dataset, statement: Any, receipts: Any = None) -> dict[str, Any]:
    """The owner's proof under the paper's policy and under the hardened one with the owner's statement (and,
    with `receipts` (`pol.registration.Receipts`), its registrations: the challenge then draws on the log's
    beacon for the registered commitment)."""
    from ..pol import VerificationPolicy, verify_proof
    from ..pol.policy import Hardening

    reference = VerificationPolicy.reference()
    policy = Hardening(statement=statement, receipts=receipts).policy(VerificationPolicy())
    hardened = judged(verify_proof(proof, train, policy))
    hardened["max_relative_error_allowed"] = policy.max_relative_error
    return {"reference": judged(verify_proof(proof, train, reference)), "hardened": hardened}


def run_spoofs(
    model: nn.Module,
    spec: ModelSpec,
    data: DataSplits,
    config: TrainConfig,
    run: Path,
    methods: tuple[str, ...],
    seed: int,
    *,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """A thief who holds the watermarked model and the data forges a proof with every method; both verifiers
    judge each. Proofs go to run/spoofs/METHOD/proof; paths in the results are relative to `run`."""
    from ..attacks.pol_spoof import cost_ratio, honest_training_cost
    from ..attacks.pol_spoof_proof import write_spoof_proof
    from ..attacks.pol_spoof_report import make_spoof
    from ..pol import VerificationPolicy, verify_proof
    from ..pol.policy import Hardening

    honest = honest_training_cost(spec, data.train, config, measure_steps=50)
    tracker = Tracker("spoof", [Work(m, SPOOF_EPOCHS.get(m, 5.0)) for m in methods], on_progress)
    reports = []
    for method in methods:
        with tracker.item():
            spoof = make_spoof(method, seed=seed, progress=progress, **DEMO_SPOOF_SETTINGS.get(method, {}))
            result = spoof(model, spec, data.train, config=config)
            proof = Path("spoofs") / method / "proof"
            proof_id = write_spoof_proof(result, run / proof)
            reference = VerificationPolicy.reference()
            policy = Hardening().policy(VerificationPolicy())
            hardened = judged(verify_proof(run / proof, data.train, policy))
            hardened["max_relative_error_allowed"] = policy.max_relative_error
            reports.append(
                {
                    "format": "modeldeed.pol-spoof",
                    "version": 1,
                    "method": method,
                    "proof": proof.as_posix(),
                    "proof_id": proof_id,
                    "spoof": result.to_json(),
                    "honest_cost": honest.to_json(),
                    "cost_ratio": cost_ratio(result.cost, honest),
                    "reference": judged(verify_proof(run / proof, data.train, reference)),
                    "hardened": hardened,
                }
            )
    tracker.finish()
    return reports


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded ratio is written as null (the report shows '–')."""
    return float(value) if value == value and abs(value) != float("inf") else None
