"""`modeldeed attack pol-spoof`: forge a proof of learning for a model, then judge it with the real verifiers.

Exit status: 0 the judging verifier rejected the forged proof, 1 it accepted it (the spoof succeeded), 2 bad
input. The judge is the reference policy, or the hardened one with --hardened; both verdicts are reported.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..files import write_json_atomic
from .common import (
    add_data_options,
    add_runtime_options,
    add_trust_option,
    apply_runtime,
    check_compatible,
    load_data,
    print_json,
)

REPORT_FILE = "spoof.json"
PROOF_DIR = "proof"
METHODS = (
    "zhang1",
    "zhang2",
    "zhang3",
    "infinitesimal",
    "blindfold",
    "steer-momentum",
    "partial-trained",
    "grind-challenge",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pol-spoof` to the `attack` group's subcommands."""
    p = sub.add_parser(
        "pol-spoof",
        help="forge a proof of learning for a model (Zhang et al. 2022, Fang et al. 2023, adaptive) and judge it",
        description="Forge a proof that MODEL was trained on --data. Published spoofs: W0 by the sort trick, "
        "checkpoints on the straight line to the model, and crafted samples (zhang1-3: L-BFGS noise through the "
        "training step, stored in the proof) or real batches (infinitesimal, blindfold: honest steps where top-Q "
        "looks). Adaptive spoofs (from the honest seed, real batches in the seeded order): steer-momentum (k = 1, "
        "each checkpoint's momentum chosen so the next real step lands on a path to the model), partial-trained "
        "(one small parameter declared trained, the rest moved on a path), grind-challenge (honest intervals, "
        "then fabricated ones, and a free field ground until the verifier's draw misses them). The proof lands in "
        "OUT/proof (check it with `modeldeed pol verify OUT/proof [--hardened]`), the report in OUT/spoof.json. "
        "Exit status: 0 the judging verifier rejected the proof, 1 it accepted it, 2 bad input.",
    )
    p.add_argument("model_dir", metavar="MODEL", help="the model directory whose proof is forged")
    add_data_options(p)
    p.add_argument("--method", required=True, choices=METHODS, help="which spoof")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="write OUT/proof and OUT/spoof.json (OUT/proof must not exist)"
    )
    p.add_argument("--k", type=int, help="checkpoint interval of the forged proof (default: 2; steer-momentum: 1)")
    p.add_argument(
        "--epochs",
        type=int,
        help="length of the forged proof (default: the fewest that delta allows; adaptive: the model's training)",
    )
    p.add_argument("--batch-size", type=int, help="declared batch size (default: the model's training config)")
    p.add_argument("--lr", type=float, help="declared learning rate (default: the model's; infinitesimal: 1/100 of it)")
    p.add_argument(
        "--margin", type=float, default=0.5, help="checkpoints within MARGIN*delta of each other (default: 0.5)"
    )
    p.add_argument(
        "--delta",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="the verifier's normalised delta (fraction of d_ref) for a metric (default: pol verify's)",
    )
    p.add_argument("--calibration", metavar="FILE", help="take delta and d_ref from `pol calibrate --out FILE`")
    p.add_argument(
        "--w0",
        choices=("sort", "seed"),
        help="sort: W0 by the sort trick (the published spoofs' default); seed: the honest initialisation of "
        "--seed (the adaptive spoofs' default)",
    )
    p.add_argument("--seed", type=int, default=0, help="declared seed and the attack's randomness (default: 0)")
    z = p.add_argument_group("Zhang et al.'s attacks (defaults: the reference's per attack)")
    z.add_argument("--iterations", type=int, help="L-BFGS iterations per round (I: 100, II/III: 10)")
    z.add_argument("--rounds", type=int, help="L-BFGS rounds per crafted batch (I: 10, II/III: 1)")
    z.add_argument("--lam", type=float, help="weight of ||R||^2 (I/II: 1, III: 0.1)")
    z.add_argument("--gd", type=float, help="accept a batch when ||grad - g*||^2 < GD (I: 500, II: 30, III: 15)")
    z.add_argument("--nd", type=float, help="... and ||R||^2 < ND (I: 500, II: 30, III: 20)")
    z.add_argument("--retries", type=int, help="tries per crafted batch, each on a fresh batch (I: 1, II: 10, III: 30)")
    p.add_argument("--q", type=int, default=2, help="blindfold: honest intervals per epoch (default: 2)")
    a = p.add_argument_group("adaptive spoofs")
    a.add_argument("--parameter", metavar="NAME", help="partial-trained: the one parameter declared trained")
    a.add_argument(
        "--fabricated", type=float, default=0.5, help="grind-challenge: fraction of fabricated intervals (default: 0.5)"
    )
    a.add_argument(
        "--grind",
        choices=("free-form", "checkpoint"),
        default="free-form",
        help="grind-challenge: vary a free-form field of proof.json, or one bit of a fabricated checkpoint",
    )
    a.add_argument("--tries", type=int, default=10_000, help="grind-challenge: grinding budget (default: 10000)")
    p.add_argument(
        "--honest-timing-steps",
        type=int,
        default=50,
        metavar="N",
        help="time N honest training steps and extrapolate to the whole run; 0: train it all (default: 50)",
    )
    p.add_argument("--hardened", action="store_true", help="judge (exit status) by the hardened verdict")
    add_trust_option(p)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_runtime_options(p)
    p.set_defaults(handler=run_pol_spoof)


def spoof_settings(args: argparse.Namespace, delta: dict[str, float], d_ref: dict[str, float] | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "delta": delta,
        "d_ref": d_ref,
        "margin": args.margin,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "progress": not args.no_progress,
    }
    if args.k is not None:
        settings["k"] = args.k
    if args.w0 is not None:
        settings["w0"] = args.w0
    if args.method.startswith("zhang"):
        for option, name in (
            ("iterations", "iterations"),
            ("rounds", "rounds"),
            ("lam", "lam"),
            ("gd", "gradient_threshold"),
            ("nd", "noise_threshold"),
            ("retries", "retries"),
        ):
            if getattr(args, option) is not None:
                settings[name] = getattr(args, option)
    if args.method == "blindfold":
        settings["q"] = args.q
    if args.method == "partial-trained" and args.parameter:
        settings["parameter"] = args.parameter
    if args.method == "grind-challenge":
        settings.update(fabricated=args.fabricated, grind=args.grind, tries=args.tries)
    return settings


def verifier_thresholds(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float] | None]:
    from ..pol import load_calibration
    from ..pol.policy import DEFAULT_DELTA
    from .pol_cmd import parse_deltas

    delta, d_ref = dict(DEFAULT_DELTA), None
    if args.calibration:
        calibration = load_calibration(args.calibration)
        delta.update(calibration.normalised_delta)
        d_ref = dict(calibration.d_ref)
    delta.update(parse_deltas(args.delta))
    return delta, d_ref


def run_pol_spoof(args: argparse.Namespace) -> int:
    from ..attacks.finetune import training_config
    from ..attacks.pol_spoof import honest_training_cost
    from ..attacks.pol_spoof_report import make_spoof, spoof_and_verify
    from ..models import load_model
    from ..pol import VerificationPolicy
    from ..training import TrainConfig

    apply_runtime(args)
    if args.honest_timing_steps < 0:
        raise ModeldeedError(f"--honest-timing-steps must be >= 0, got {args.honest_timing_steps}")
    out = Path(args.out)
    if (out / PROOF_DIR).exists():
        raise ModeldeedError(f"{out / PROOF_DIR} already exists; choose a new --out")
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code)
    data = load_data(args)
    check_compatible(info, data, args.model_dir)
    claimed = dataclasses.replace(training_config(info) or TrainConfig(epochs=20), device=args.device)
    delta, d_ref = verifier_thresholds(args)
    spoof = make_spoof(args.method, **spoof_settings(args, delta, d_ref))
    honest = honest_training_cost(
        info.spec, data.train, claimed, trust_code=args.trust_model_code, measure_steps=args.honest_timing_steps or None
    )
    policy = VerificationPolicy.reference(delta=delta, d_ref=d_ref)
    report = spoof_and_verify(
        spoof,
        model,
        info.spec,
        data.train,
        config=claimed,
        out=out / PROOF_DIR,
        reference=policy,
        honest_cost=honest,
        trust_code=args.trust_model_code,
    )
    doc = report.to_json()
    doc["honest_cost_measured_steps"] = args.honest_timing_steps or "all"
    write_json_atomic(out / REPORT_FILE, doc)
    judged = report.hardened if args.hardened and report.hardened is not None else report.reference
    if args.json:
        print_json(doc)
    else:
        print_report(report, out)
    return 1 if judged.accepted else 0


def print_report(report: Any, out: Path) -> None:
    spoof, cost, honest = report.spoof, report.spoof.cost, report.honest_cost
    trajectory = spoof.trajectory
    print(f"{report.method}: forged proof {report.proof_id} in {out / PROOF_DIR}")
    print(
        f"  {trajectory.total_steps} steps ({trajectory.config.epochs} epochs, k = {trajectory.k}), "
        f"{trajectory.modified_samples} modified samples stored in the proof"
    )
    ratio = report.cost_ratio or {}
    grads = ratio.get("gradient_evaluations")
    wall = ratio.get("wall_time")
    print(
        f"  cost: {cost.gradient_evaluations:.0f} gradient evaluations, {cost.wall_seconds:.1f} s; honest training "
        f"{honest.gradient_evaluations:.0f}, {honest.wall_seconds:.1f} s; ratio "
        f"{'n/a' if grads is None else f'{grads:.3g}'} (gradients), {'n/a' if wall is None else f'{wall:.3g}'} (time)"
    )
    grinding = spoof.details.get("grinding")
    if grinding:
        print(
            f"  grinding ({grinding['field']}): {grinding['tries']} tries, the draw "
            f"{'missed' if grinding['missed'] else 'never missed'} every fabricated interval"
            + (
                f"; the previous verifier's draw missed them after {grinding['previous_verifier_missed_after']}"
                if grinding.get("previous_verifier_missed_after")
                else ""
            )
        )
    errors = ", ".join(f"{m} {v:.3g}" for m, v in report.reference.max_normalised_error.items())
    print(
        f"  reference verifier: {'ACCEPTED' if report.reference.accepted else 'REJECTED'} "
        f"(largest replay error / d_ref: {errors or 'none replayed'})"
    )
    for reason in report.reference.reasons[:5]:
        print(f"    reason: {reason}")
    if report.hardened is not None:
        failed = report.hardened.failed()
        print(
            f"  hardened verifier:  {'ACCEPTED' if report.hardened.accepted else 'REJECTED'}"
            + (f" (failed: {', '.join(failed)})" if failed else "")
        )
        for reason in report.hardened.reasons[:8]:
            print(f"    reason: {reason}")
    print(f"  report: {out / REPORT_FILE}")
