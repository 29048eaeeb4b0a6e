"""Adi et al.'s experiments at the scale a machine allows: Table 1, Fig. 6, Fig. 7 and a Table 2 analogue.

Each function returns an ExperimentRecord whose `results` the report renders beside the paper's numbers.
Accuracies are in percent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..attacks import FTAL, FTLL, RTAL, RTLL, OwnershipPiracy, TransferLearning, paper_settings, watermark_verifier
from ..data import Dataset, DataSplits, load_dataset
from ..progress import Tracker
from ..training import accuracy
from .owner import EMBEDDINGS, Owner, prepare_owner, pretrained_config, step
from .setting import ExperimentRecord, ExperimentSetting

log = logging.getLogger(__name__)

FINE_TUNINGS = {"FTLL": FTLL, "FTAL": FTAL, "RTLL": RTLL, "RTAL": RTAL}


def pct(x: float) -> float:
    return round(100.0 * x, 2)


def functionality(
    setting: ExperimentSetting, out: str | Path, *, progress: bool = True, tracker: Tracker | None = None
) -> ExperimentRecord:
    """Table 1: test and trigger-set accuracy of No-WM, FROMSCRATCH and PRETRAINED."""
    record = ExperimentRecord("functionality", setting)
    owner = prepare_owner(setting, out, progress=progress, tracker=tracker)
    verifier = watermark_verifier(owner.marking_key, owner.verification_key)
    rows = []
    with step(tracker, "evaluate the three models"):
        for name in EMBEDDINGS:
            model = owner.models[name]
            verdict = verifier(model)
            rows.append(
                {
                    "model": name,
                    "test_accuracy": pct(accuracy(model, owner.data.test)),
                    "trigger_accuracy": pct(verdict.trigger_accuracy),
                    "accepted": bool(verdict.accepted),
                }
            )
    record.results = {"rows": rows, "trigger_set_size": setting.trigger_size}
    return record


def unremovability(
    setting: ExperimentSetting,
    out: str | Path,
    *,
    progress: bool = True,
    attack_epochs: int | None = None,
    tracker: Tracker | None = None,
) -> ExperimentRecord:
    """Fig. 6: the four fine-tunings on both embeddings; trigger accuracy with the attacker's and the original head."""
    record = ExperimentRecord("unremovability", setting)
    owner = prepare_owner(setting, out, progress=progress, tracker=tracker)
    verifier = watermark_verifier(owner.marking_key, owner.verification_key)
    settings = attack_settings(owner, setting, attack_epochs, progress)
    rows = []
    for embedding in ("FROMSCRATCH", "PRETRAINED"):
        model = owner.models[embedding]
        base = verifier(model)
        rows.append(
            {
                "embedding": embedding,
                "attack": "none",
                "test_accuracy": pct(accuracy(model, owner.data.test)),
                "trigger_accuracy": pct(base.trigger_accuracy),
                "trigger_accuracy_original_head": None,
                "accepted": bool(base.accepted),
                "watermark_removed": False,
            }
        )
        for name, cls in FINE_TUNINGS.items():
            with step(tracker, f"{name} on {embedding}"):
                _, result = cls(**settings)(model, owner.data.train, test=owner.data.test, verifier=verifier)
            original = result.original_head
            rows.append(
                {
                    "embedding": embedding,
                    "attack": name,
                    "test_accuracy": pct(result.test_accuracy_after),
                    "trigger_accuracy": pct(result.trigger_accuracy),
                    "trigger_accuracy_original_head": None if original is None else pct(original.trigger_accuracy),
                    "accepted": result.accepted,
                    "watermark_removed": result.watermark_removed,
                }
            )
    record.results = {"rows": rows, "attack_settings": {k: v for k, v in settings.items() if k != "progress"}}
    return record


def piracy(
    setting: ExperimentSetting,
    out: str | Path,
    *,
    progress: bool = True,
    attack_epochs: int | None = None,
    tracker: Tracker | None = None,
) -> ExperimentRecord:
    """Fig. 7: a pirate embeds TS-NEW into the FROMSCRATCH model, then no tuning, FTAL or RTAL."""
    record = ExperimentRecord("piracy", setting)
    owner = prepare_owner(setting, out, progress=progress, tracker=tracker)
    verifier = watermark_verifier(owner.marking_key, owner.verification_key)
    settings = attack_settings(owner, setting, attack_epochs, progress)
    rows = []
    for tuning in ("none", "ftal", "rtal"):
        attack = OwnershipPiracy(
            finetune=tuning,
            trigger_size=setting.trigger_size,
            triggers_per_batch=owner.k,
            embed_epochs=setting.epochs,
            embed_lr=pretrained_config(setting).lr,
            **settings,
        )
        with step(tracker, f"piracy: embed TS-NEW, then {'none' if tuning == 'none' else tuning.upper()}"):
            _, result = attack(owner.models["FROMSCRATCH"], owner.data.train, test=owner.data.test, verifier=verifier)
        pirate = result.details["pirate"]  # TS-NEW, judged by the pirate's own verifier
        rows.append(
            {
                "fine_tuning": tuning.upper() if tuning != "none" else "none",
                "test_accuracy": pct(result.test_accuracy_after),
                "ts_orig_accuracy": pct(result.trigger_accuracy),
                "ts_orig_accepted": result.accepted,
                "ts_new_accuracy": pct(pirate["trigger_accuracy"]),
                "ts_new_accepted": pirate["accepted"],
            }
        )
    record.results = {"rows": rows, "attack_settings": {k: v for k, v in settings.items() if k != "progress"}}
    return record


def transfer(
    setting: ExperimentSetting,
    out: str | Path,
    *,
    target: str | None = None,
    target_dir: str | None = None,
    progress: bool = True,
    attack_epochs: int | None = None,
    tracker: Tracker | None = None,
) -> ExperimentRecord:
    """Table 2 analogue: RTAL transfer of the FROMSCRATCH model to another dataset, verified with the original head."""
    record = ExperimentRecord("transfer", setting)
    owner = prepare_owner(setting, out, progress=progress, tracker=tracker)
    verifier = watermark_verifier(owner.marking_key, owner.verification_key)
    settings = attack_settings(owner, setting, attack_epochs, progress)
    target_data, target_name = transfer_target(setting, target, target_dir)
    with step(tracker, "transfer (RTAL, new head)"):
        _, result = TransferLearning(**settings)(
            owner.models["FROMSCRATCH"], target_data, test=owner.data.test, verifier=verifier
        )
    record.results = {
        "rows": [
            {
                "transfer": f"{setting.data} → {target_name}",
                "target_test_accuracy": pct(result.details.get("target_test_accuracy", float("nan"))),
                "trigger_accuracy_original_head": pct(result.trigger_accuracy),
                "accepted": result.accepted,
                "source_test_accuracy_original_head": pct(result.test_accuracy_after),
            }
        ],
        "attack_settings": {k: v for k, v in settings.items() if k != "progress"},
    }
    return record


def attack_settings(owner: Owner, setting: ExperimentSetting, epochs: int | None, progress: bool) -> dict[str, Any]:
    """The paper's adversary: the owner's amount of data and epochs, at the owner's last learning rate."""
    settings = {**paper_settings(owner.config), "seed": setting.seed, "device": setting.device, "progress": progress}
    if epochs is not None:
        settings["epochs"] = epochs
    return settings


def transfer_target(setting: ExperimentSetting, target: str | None, target_dir: str | None) -> tuple[DataSplits, str]:
    """The named target dataset; by default digits for image datasets, and a digits-parity task for digits."""
    if target is None:
        target = "digits-parity" if setting.data == "digits" else "digits"
    if target == "digits-parity":
        return digits_parity(), "digits-parity"
    return load_dataset(target, target_dir), target


def digits_parity() -> DataSplits:
    """Digits relabelled even/odd: a different task (two classes, new head) from embedded data, for offline demos."""
    digits = load_dataset("digits")

    def relabel(d: Dataset) -> Dataset:
        return Dataset("digits-parity", d.x, d.y % 2, ("even", "odd"))

    return DataSplits(relabel(digits.train), relabel(digits.test))
