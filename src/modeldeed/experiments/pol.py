"""Proof-of-learning at CPU scale: honest reproduction errors against spoofed ones, and spoof cost against honest.

The honest proof is recorded, calibrated (ε_repr across thread counts, d_ref from an independent run) and
verified with the reference and the hardened policy; then every spoof forges a proof for the honest final
model at two proof lengths, and both policies judge it (Jia et al. 2021; Zhang et al. 2022; Fang et al. 2023).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from ..models import build_model, spec_for_data
from ..progress import Tracker
from .owner import experiment_data, step, training_config
from .setting import ExperimentRecord, ExperimentSetting

log = logging.getLogger(__name__)

SPOOF_METHODS = ("zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold")
# Attack I at the reference's 10 rounds of 100 L-BFGS iterations takes ~8 CPU minutes per digits proof; the
# experiment runs one round of 20 (recorded in its results). `attack pol-spoof` keeps the reference settings.
SPOOF_SETTINGS: dict[str, dict[str, Any]] = {"zhang1": {"rounds": 1, "iterations": 20}}


def pol(
    setting: ExperimentSetting,
    out: str | Path,
    *,
    progress: bool = True,
    methods: tuple[str, ...] = SPOOF_METHODS,
    checkpoint_every: int | None = None,
    attack_epochs: int | None = None,
    tracker: Tracker | None = None,
) -> ExperimentRecord:
    """Record, calibrate and verify an honest proof; spoof it with every method at two lengths; compare."""
    from ..attacks.pol_spoof import honest_training_cost
    from ..attacks.pol_spoof_report import VerdictSummary, make_spoof, spoof_and_verify
    from ..pol import VerificationPolicy, calibrate, record_training, verify_proof
    from ..pol.policy import Hardening
    from ..pol.statement import CarriedStatement, make_statement

    del attack_epochs  # the PoL experiment has no fine-tuning attacks; accepted for a uniform CLI
    record = ExperimentRecord("pol", setting)
    out = Path(out) / "pol"
    if out.exists():  # this experiment's own proofs from an earlier run: recorded anew
        shutil.rmtree(out)
    data = experiment_data(setting)
    spec = spec_for_data(setting.model, data.train.input_shape, data.train.num_classes)
    config = training_config(setting)
    steps_per_epoch = config.steps_per_epoch(len(data.train))
    k = checkpoint_every or max(1, min(100, steps_per_epoch // 3))
    statement, opening = make_statement(data.train, config, spec, checkpoint_every=k)
    model = build_model(spec, seed=config.seed)
    with step(tracker, "record the honest proof"):
        recording = record_training(
            model,
            data.train,
            config,
            out / "honest",
            spec=spec,
            checkpoint_every=k,
            init_seed=config.seed,
            statement=CarriedStatement(statement=statement, opening=opening),
            progress=progress,
        )
    with step(tracker, "calibrate delta (replays at two thread counts)"):
        calibration = calibrate(out / "honest", data.train, threads=(1, 2), progress=progress)
    reference = VerificationPolicy.reference()
    hardening = Hardening(statement=statement)
    with step(tracker, "verify the honest proof (reference and hardened)"):
        honest = {
            "proof_id": recording.proof_id,
            "k": k,
            "steps": recording.result.steps,
            "calibration": calibration.to_json(),
            "reference": VerdictSummary.of(verify_proof(out / "honest", data.train, reference)).to_json(),
            "hardened": VerdictSummary.of(verify_proof(out / "honest", data.train, hardening.policy())).to_json(),
        }
    honest_cost = honest_training_cost(spec, data.train, config, measure_steps=min(50, steps_per_epoch))
    spoofs: list[dict[str, Any]] = []
    for method in methods:
        epochs: int | None = None
        for length in ("shortest", "double"):
            with step(tracker, f"spoof {method}, {length} proof"):
                spoof = make_spoof(
                    method,
                    seed=setting.seed,
                    epochs=epochs,
                    progress=progress,
                    device=setting.device,
                    **SPOOF_SETTINGS.get(method, {}),
                )
                report = spoof_and_verify(
                    spoof,
                    model,
                    spec,
                    data.train,
                    config=config,
                    out=out / f"{method}-{length}",
                    honest_cost=honest_cost,
                    hardening=Hardening(),
                )
                doc = report.to_json()
                declared = doc["spoof"]["declared_training"]["epochs"]
                spoofs.append(
                    {
                        "method": method,
                        "length": length,
                        "epochs": declared,
                        "steps": doc["spoof"]["steps"],
                        "cost": doc["spoof"]["cost"],
                        "cost_ratio": doc["cost_ratio"],
                        "reference": doc["reference"],
                        "hardened": doc["hardened"],
                    }
                )
                epochs = 2 * declared
    record.results = {
        "honest": honest,
        "honest_cost": honest_cost.to_json(),
        "spoofs": spoofs,
        "threads": torch.get_num_threads(),
    }
    return record
