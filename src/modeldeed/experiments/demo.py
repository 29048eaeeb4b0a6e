"""The whole ownership story in one run, on the embedded digits data: what an owner proves, what an attacker does.

KeyGen (private and public keys) → train FROMSCRATCH with the watermark while recording a proof-of-learning →
Verify and PVerify → verify the proof (reference and hardened policy) → every watermark attack with its
verdict, and strength sweeps → every PoL spoof against both policies → results.json and report.html.

A run directory holds one complete run or nothing (see `rundir`): a second run never overwrites the keys that
the first run's report is evidence for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..errors import ModeldeedError
from ..files import write_json_atomic
from ..models import ModelInfo, build_model, save_model, spec_for_data
from ..progress import ProgressCallback, Tracker, Work
from ..training import TrainConfig, accuracy, predict
from .demo_attacks import DEMO_ATTACKS, DEMO_SWEEPS, demo_entries, sweep_entries
from .demo_pol import SPOOF_METHODS, attach_statement, owner_statement, run_spoofs, verify_owner_proof
from .demo_registry import REGISTRY_DIR, DemoRegistrar
from .evidence import artefacts, commands, device_description
from .notes import collected_warnings
from .plan import SPOOF_EPOCHS
from .rundir import RunDirectory
from .setting import machine_description

# The zero-knowledge stage (on by default when Node.js and o1js are installed): keygen, a digits MLP, compiling
# the 16-slot circuit (first run only) and one proof, counted in epochs of the owner's training (~0.2 s each);
# measured times are in docs/zk.md.
ZK_EPOCHS = 400.0

log = logging.getLogger(__name__)

__all__ = ["DEMO_ATTACKS", "DEMO_SWEEPS", "SPOOF_METHODS", "DemoSetting", "demo_plan", "run_demo"]

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class DemoSetting:
    """Small enough for about a minute on 2 CPU cores; every number here is printed in the report.

    `seed` drives training, the attacks and the spoofs. `key_seed` (set by `demo --seed`) also derives the
    watermark keys from a seed, so that the whole run repeats exactly; such keys are for demonstration only
    (anyone who knows the seed can rebuild the trigger set). None: keys from `secrets`, as an owner's must be.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0
    key_seed: int | None = None
    trigger_size: int = 100
    public_security_bits: int = 16  # ℓ = 4n = 64 triggers, 32 embedded
    checkpoint_every: int = 15
    attack_epochs: int = 5
    spoof_methods: tuple[str, ...] = SPOOF_METHODS
    attacks: tuple[str, ...] = DEMO_ATTACKS  # ("all",): the whole suite
    sweeps: tuple[str, ...] = DEMO_SWEEPS
    threads: int = 1  # the digits cnn is fastest on one thread
    # also watermark a digits MLP and verify it in zero knowledge (modeldeed.zk): None runs it when the toolchain
    # (Node.js, o1js) is installed and says why not otherwise; True requires it; False leaves it out
    zk: bool | None = None
    zk_security_bits: int = 4  # 16 triggers, about 8 hidden: one 16-slot proof, the circuit the tests compile
    zk_slots: int = 16

    def training_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            lr_milestones=(self.epochs // 2, (3 * self.epochs) // 4),
        )


def demo_plan(setting: DemoSetting) -> list[Work]:
    """The demo's stages with their cost in epochs of the owner's training (measured ratios on digits)."""
    from ..attacks.planning import suite_plan

    config = setting.training_config()
    entries = demo_entries(config, setting.attacks, epochs=setting.attack_epochs, seed=setting.seed)
    entries += [e for _, _, e in sweep_entries(config, setting.sweeps, epochs=setting.attack_epochs, seed=setting.seed)]
    return [
        Work("keygen", 0.2),
        Work("train with watermark + proof", 1.2 * setting.epochs),
        Work("verify watermark", 0.2),
        # in the order run_demo runs the stages: the tracker credits each finished stage with its planned cost
        *([Work("zero-knowledge watermark verification", ZK_EPOCHS)] if zk_skip_reason(setting) is None else []),
        Work("verify proof-of-learning", 1.3 * setting.epochs),
        Work("watermark attacks", sum(w.cost for w in suite_plan(entries))),
        Work("proof-of-learning spoofs", sum(SPOOF_EPOCHS.get(m, 5.0) for m in setting.spoof_methods)),
    ]


def zk_skip_reason(setting: DemoSetting) -> str | None:
    """Why the zero-knowledge stage does not run (None when it does); `zk=True` without a toolchain is an error."""
    from ..zk.node import toolchain_problem

    if setting.zk is False:
        return "left out on request (demo --no-zk)"
    problem = toolchain_problem()
    if problem is not None and setting.zk:
        raise ModeldeedError(f"demo --zk: {problem}")
    return None if problem is None else f"skipped: {problem}"


def estimate_seconds(setting: DemoSetting) -> float:
    """How long the demo will take here: its plan times one measured epoch of the owner's training."""
    from ..attacks.planning import estimate_seconds as total
    from ..attacks.planning import measure_epoch_seconds

    data = load_dataset("digits")
    spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
    threads = torch.get_num_threads()
    torch.set_num_threads(setting.threads)
    try:
        epoch = measure_epoch_seconds(build_model(spec, seed=0), data.train, setting.training_config())
    finally:
        torch.set_num_threads(threads)
    return total(demo_plan(setting), epoch)


def run_demo(
    out: str | Path,
    setting: DemoSetting | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run every stage and put the run in `out` (results.json, report.html, keys, model, proofs); return the results.

    `out` must not hold files unless `force` (then the earlier run is replaced once this one is complete).
    `progress` shows the training loop's own bars; `on_progress` receives the stages as they start.
    """
    setting = setting or DemoSetting()
    final = Path(out)
    directory = RunDirectory(final, force=force)
    threads = torch.get_num_threads()
    torch.set_num_threads(setting.threads)
    notes: list[str] = []
    try:
        from ..registry.local import local_registry

        with collected_warnings(notes):
            started = time.perf_counter()
            with local_registry(directory.work / REGISTRY_DIR) as local:  # stopped when the run ends, however
                registrar = DemoRegistrar(directory.work, local)
                registrar.seconds = time.perf_counter() - started
                results = _run(directory.work, setting, progress, on_progress, notes, registrar)
        from ..report.demo import build_demo_report

        build_demo_report(results, directory.work / REPORT_FILE, run=final)
        directory.commit()
    except BaseException:
        directory.abandon()
        raise
    finally:
        torch.set_num_threads(threads)
    return results


def _run(
    run: Path,
    setting: DemoSetting,
    progress: bool,
    on_progress: ProgressCallback | None,
    notes: list[str],
    registrar: DemoRegistrar,
) -> dict[str, Any]:
    from ..attacks import run_suite, watermark_verifier
    from ..models.digest import model_digest
    from ..pol import commit_proof, record_training, save_commitment
    from ..pol.registration import Receipts
    from ..pol.statement import CarriedStatement
    from ..registry import load_receipt
    from ..watermark import TriggerMixingHook, auto_triggers_per_batch, keygen, pkeygen, pverify, save_key_pair, verify
    from ..watermark.registration import KEY_RECEIPT_FILE, key_digest
    from .watermark import digits_parity

    stages = Tracker("demo", demo_plan(setting), on_progress)
    seconds: dict[str, float] = {}
    machine = machine_description()
    results: dict[str, Any] = {
        "format": "modeldeed.demo",
        "version": 2,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "setting": _plain(asdict(setting)),
        "machine": {**machine, "device": device_description(machine, setting.threads)},
    }
    data = load_dataset("digits")
    spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
    config = setting.training_config()
    total_steps = config.epochs * config.steps_per_epoch(len(data.train))

    def stage(name: str) -> Any:
        return _timed(stages, name, seconds)

    with stage("keygen"):
        key_seed = setting.key_seed
        public_seed = None if key_seed is None else key_seed + 1
        mk, vk = keygen(data.train.classes, data.train.input_shape, size=setting.trigger_size, seed=key_seed)
        save_key_pair(run / "keys" / "private", mk, vk)
        pmk, pvk = pkeygen(
            data.train.classes, data.train.input_shape, security_bits=setting.public_security_bits, seed=public_seed
        )
        save_key_pair(run / "keys" / "public", pmk, pvk)
    for name, key in (("private", vk), ("public", pvk)):  # registered before the model exists
        folder = f"keys/{name}"
        registrar.register(
            f"{name} watermark key", "watermark-key", key_digest(key), folder, f"{folder}/{KEY_RECEIPT_FILE}"
        )
    hooks = [
        TriggerMixingHook.from_key(
            key,
            k=auto_triggers_per_batch(len(key.marking_indices()), total_steps, batch_size=config.batch_size),
            seed=config.seed + i,
        )
        for i, key in enumerate((mk, pmk))
    ]
    statement, opening, triggers = owner_statement(
        data.train, hooks, config, spec, setting.checkpoint_every, (vk.key_id, pvk.key_id), key_seed
    )
    statement_receipt = registrar.register(  # before training starts
        "training statement", "pol-statement", statement.id, "statement.json", "statement.receipt.json"
    )

    with stage("train with watermark + proof"):
        model = build_model(spec, seed=config.seed)
        recording = record_training(
            model,
            data.train,
            config,
            run / "proof",
            spec=spec,
            checkpoint_every=setting.checkpoint_every,
            hooks=hooks,
            init_seed=config.seed,
            statement=CarriedStatement(statement=statement, opening=opening),
            committed=triggers,
            progress=progress,
        )
        attach_statement(run, statement, opening)
        test_accuracy = accuracy(model, data.test)
        save_model(
            run / "model",
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
    started = time.perf_counter()
    commitment, _ = commit_proof(run / "proof")
    save_commitment(run / "commitment.json", commitment)
    registrar.seconds += time.perf_counter() - started
    commitment_receipt = registrar.register(
        "proof commitment", "pol-commitment", commitment.id, "commitment.json", "commitment.receipt.json"
    )
    registrar.register("model", "model", model_digest(run / "model"), "model", "model.receipt.json")
    seconds["registry"] = round(registrar.seconds, 2)
    receipts = Receipts(registrar.local.log_key, load_receipt(commitment_receipt), load_receipt(statement_receipt))
    results["model"] = {
        "architecture": "cnn",
        "dataset": data.name,
        "test_accuracy": test_accuracy,
        "steps": total_steps,
        "triggers_per_batch": [h.k for h in hooks],
    }

    with stage("verify watermark"):
        private = verify(mk, vk, model, test_data=data.test)
        public = pverify(pvk, model, marking_key=pmk, data=(data.train,))
        predictions = predict(model, mk.images)
    results["watermark"] = {
        "private": {**private.to_json(), "trigger_predictions": [int(p) for p in predictions]},
        "public": public.to_json(),
    }

    skipped = zk_skip_reason(setting)
    if skipped is None:
        with stage("zero-knowledge watermark verification"):
            from ..zk.demo import zk_demo

            results["zk"] = zk_demo(
                run / "zk", data, seed=setting.seed, security_bits=setting.zk_security_bits, slots=setting.zk_slots
            )
    else:
        log.info("zero-knowledge watermark verification %s", skipped)
        results["zk"] = {"skipped": skipped}

    with stage("verify proof-of-learning"):
        results["proof"] = verify_owner_proof(run / "proof", data.train, statement, receipts)

    with stage("watermark attacks"):
        verifier = watermark_verifier(mk, vk)
        target = digits_parity()
        entries = demo_entries(config, setting.attacks, epochs=setting.attack_epochs, seed=setting.seed)
        suite = run_suite(model, data, test=data.test, verifier=verifier, entries=entries, target=target)
        results["attacks"] = [s.to_json() for s in suite]
        sweeps = sweep_entries(config, setting.sweeps, epochs=setting.attack_epochs, seed=setting.seed)
        swept = run_suite(model, data, test=data.test, verifier=verifier, entries=[e for _, _, e in sweeps])
        results["sweeps"] = [
            {"attack": sweep.attack, "parameter": sweep.parameter, "strength": strength, **r.to_json()}
            for (sweep, strength, _), r in zip(sweeps, swept)
        ]

    with stage("proof-of-learning spoofs"):
        results["spoofs"] = run_spoofs(
            model, spec, data, config, run, setting.spoof_methods, setting.seed, progress=progress
        )
    stages.finish()
    results["evidence"] = artefacts(
        run, private_key=vk, public_key=pvk, proof_id=recording.proof_id, statement=statement, key_seed=key_seed
    )
    results["evidence"]["registry"] = registrar.evidence()
    results["evidence"]["commands"] = commands(results, setting.threads)
    results["notes"] = notes
    results["seconds"] = seconds
    write_json_atomic(run / RESULTS_FILE, results)
    return results


@contextmanager
def _timed(tracker: Tracker, name: str, seconds: dict[str, float]) -> Iterator[None]:
    """A stage of the demo: reported to the tracker as it starts, timed into `seconds`."""
    planned = tracker.plan[tracker.index].label if tracker.index < len(tracker.plan) else None
    if planned != name:  # the ETA credits each stage with its planned cost: plan and run order must agree
        raise AssertionError(f"demo stage {name!r} runs where the plan has {planned!r}")
    with tracker.item(name):
        started = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - started, 2)


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
