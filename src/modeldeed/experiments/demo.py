"""The whole ownership story in one run, on the embedded digits data: what an owner proves, what an attacker does.

KeyGen (private and public keys) → train FROMSCRATCH with the watermark while recording a proof-of-learning →
Verify and PVerify → verify the proof (reference and hardened policy) → every watermark attack with its
verdict → every PoL spoof against both policies → results.json and report.html.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import Dataset, DataSplits, load_dataset
from ..files import write_json_atomic
from ..models import ModelInfo, save_model, spec_for_data
from ..training import TrainConfig, accuracy
from .setting import machine_description

log = logging.getLogger(__name__)

SPOOF_METHODS = ("zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold")
# Attack I with the reference's 10 rounds of 100 L-BFGS iterations takes ~8 minutes here; the demo runs one
# round of 20 (the report says so). `modeldeed attack pol-spoof --method zhang1` has the reference settings.
DEMO_SPOOF_SETTINGS: dict[str, dict[str, Any]] = {"zhang1": {"rounds": 1, "iterations": 20}}
# One strength of every attack type, to keep the demo to a few minutes; `attacks=("all",)` runs the whole suite.
DEMO_ATTACKS = (
    "ftll",
    "ftal",
    "rtll",
    "rtal",
    "piracy-ftal",
    "transfer",
    "fine-prune-0.5",
    "prune-0.6",
    "quantize-4bit",
    "noise-0.3",
    "distill-soft",
    "preprocess-blur-1",
)


@dataclass(frozen=True)
class DemoSetting:
    """Small enough for a few minutes on 2 CPU cores; every number here is printed in the report."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0
    trigger_size: int = 100
    public_security_bits: int = 16  # ℓ = 4n = 64 triggers, 32 embedded
    checkpoint_every: int = 15
    attack_epochs: int = 5
    spoof_methods: tuple[str, ...] = SPOOF_METHODS
    attacks: tuple[str, ...] = DEMO_ATTACKS  # ("all",): the whole suite
    threads: int = 1  # the digits cnn is fastest on one thread

    def training_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            lr_milestones=(self.epochs // 2, (3 * self.epochs) // 4),
        )


class Stages:
    """Named, timed stages; `on_stage` lets the CLI show progress as they start."""

    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.on_stage = on_stage or (lambda name: None)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.on_stage(name)
        log.info("demo: %s", name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 2)


def run_demo(
    out: str | Path,
    setting: DemoSetting | None = None,
    *,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every stage into `out` and return the results (also written to out/results.json and out/report.html)."""
    from ..attacks import default_suite, run_suite, select, watermark_verifier
    from ..pol import record_training
    from ..watermark import (
        TriggerMixingHook,
        auto_triggers_per_batch,
        keygen,
        pkeygen,
        pverify,
        save_key_pair,
        verify,
    )

    setting = setting or DemoSetting()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(setting.threads)
    stages = Stages(on_stage)
    results: dict[str, Any] = {
        "format": "modeldeed.demo",
        "version": 1,
        "setting": _plain(asdict(setting)),
        "machine": machine_description(),
    }
    try:
        data = load_dataset("digits")
        spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
        config = setting.training_config()
        total_steps = config.epochs * config.steps_per_epoch(len(data.train))

        with stages.stage("keygen"):
            mk, vk = keygen(data.train.classes, data.train.input_shape, size=setting.trigger_size)
            save_key_pair(out / "keys" / "private", mk, vk)
            pmk, pvk = pkeygen(data.train.classes, data.train.input_shape, security_bits=setting.public_security_bits)
            save_key_pair(out / "keys" / "public", pmk, pvk)
        hooks = [
            TriggerMixingHook.from_key(
                key, k=auto_triggers_per_batch(len(key.marking_indices()), total_steps), seed=config.seed + i
            )
            for i, key in enumerate((mk, pmk))
        ]
        statement, opening, triggers = owner_statement(
            data.train, hooks, config, spec, setting.checkpoint_every, (vk.key_id, pvk.key_id)
        )

        with stages.stage("train with watermark + proof"):
            from ..models import build_model
            from ..pol.statement import CarriedStatement

            model = build_model(spec, seed=config.seed)
            recording = record_training(
                model,
                data.train,
                config,
                out / "proof",
                spec=spec,
                checkpoint_every=setting.checkpoint_every,
                hooks=hooks,
                init_seed=config.seed,
                statement=CarriedStatement(statement=statement, opening=opening),
                committed=triggers,
                progress=progress,
            )
            attach_statement(out / "proof", statement, opening)
            test_accuracy = accuracy(model, data.test)
            save_model(
                out / "model",
                model,
                ModelInfo(
                    spec,
                    data.train.classes,
                    data.train.input_shape,
                    extra={
                        "training": config.to_json(),
                        "dataset": data.name,
                        "test_accuracy": test_accuracy,
                        "watermark": {"private_key": vk.key_id, "public_key": pvk.key_id},
                        "proof_id": recording.proof_id,
                    },
                ),
            )
        results["model"] = {
            "architecture": "cnn",
            "test_accuracy": test_accuracy,
            "steps": total_steps,
            "triggers_per_batch": [h.k for h in hooks],
        }

        with stages.stage("verify watermark"):
            private = verify(mk, vk, model, test_data=data.test)
            public = pverify(pvk, model, marking_key=pmk, data=(data.train,))
        results["watermark"] = {"private": private.to_json(), "public": public.to_json()}

        with stages.stage("verify proof-of-learning"):
            results["proof"] = verify_owner_proof(out / "proof", data.train, statement)

        with stages.stage("watermark attacks"):
            entries = default_suite(config, epochs=setting.attack_epochs, progress=False)
            if "all" not in setting.attacks:
                entries = select(entries, setting.attacks)
            from .watermark import digits_parity

            suite = run_suite(
                model,
                data,
                test=data.test,
                verifier=watermark_verifier(mk, vk),
                entries=entries,
                target=digits_parity(),
            )
            results["attacks"] = [s.to_json() for s in suite]

        with stages.stage("proof-of-learning spoofs"):
            results["spoofs"] = run_spoofs(model, spec, data, config, out / "spoofs", setting, progress)
    finally:
        torch.set_num_threads(threads)
    results["seconds"] = stages.seconds
    write_json_atomic(out / "results.json", results)
    from ..report.demo import build_demo_report

    build_demo_report(results, out / "report.html")
    return results


def owner_statement(
    train: Dataset, hooks: list[Any], config: TrainConfig, spec: Any, k: int, key_ids: tuple[str, ...]
) -> tuple[Any, Any, Any]:
    """Before training, the owner commits to every setting, the exact samples and the triggers it will embed."""
    from ..pol.statement import TriggerSet, make_statement

    triggers = TriggerSet(
        torch.cat([h.images.cpu() for h in hooks]), torch.cat([h.labels.cpu() for h in hooks]), key_ids
    )
    statement, opening = make_statement(train, config, spec, checkpoint_every=k, triggers=triggers)
    return statement, opening, triggers


def attach_statement(proof: Path, statement: Any, opening: Any) -> None:
    """Keep the owner's statement and seed opening beside the proof (published before training, in practice)."""
    from ..pol.statement import save_opening, save_statement

    save_statement(proof.parent / "statement.json", statement, force=True)
    save_opening(proof.parent / "seed_opening.json", opening, force=True)


def verify_owner_proof(proof: Path, train: Dataset, statement: Any) -> dict[str, Any]:
    from ..attacks.pol_spoof_report import VerdictSummary
    from ..pol import VerificationPolicy, verify_proof
    from ..pol.policy import Hardening

    hardened = Hardening(statement=statement).policy(VerificationPolicy())
    return {
        "reference": VerdictSummary.of(verify_proof(proof, train, VerificationPolicy.reference())).to_json(),
        "hardened": VerdictSummary.of(verify_proof(proof, train, hardened)).to_json(),
    }


def run_spoofs(
    model: torch.nn.Module,
    spec: Any,
    data: DataSplits,
    config: TrainConfig,
    out: Path,
    setting: DemoSetting,
    progress: bool,
) -> list[dict[str, Any]]:
    """A thief who holds the watermarked model and the data forges a proof with every method."""
    from ..attacks.pol_spoof import honest_training_cost
    from ..attacks.pol_spoof_report import make_spoof, spoof_and_verify

    honest = honest_training_cost(spec, data.train, config, measure_steps=50)
    reports = []
    for method in setting.spoof_methods:
        log.info("demo: spoofing with %s", method)
        spoof = make_spoof(method, seed=setting.seed, progress=progress, **DEMO_SPOOF_SETTINGS.get(method, {}))
        report = spoof_and_verify(
            spoof, model, spec, data.train, config=config, out=out / method / "proof", honest_cost=honest
        )
        reports.append(report.to_json())
    return reports


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
