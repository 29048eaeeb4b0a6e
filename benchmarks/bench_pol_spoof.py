"""Spoofing proof-of-learning: spoof cost / honest training cost, per method, at two proof lengths.

For each honest run (digits, cnn, batch 32, E epochs) the model is trained once plainly (the honest cost:
its gradient evaluations and wall time) and once recording its proof (the same weights). Every spoof then
forges a proof for the final model; both verifiers judge every proof, and the replays' errors are reported
next to the honest proof's (replayed on the recording's thread count, and on another one). The reference
verifier uses pol verify's default normalised delta; every proof is also judged with the delta that
`pol calibrate`'s rule proposes from the honest proof's reproduction error across thread counts here.

.venv/bin/python benchmarks/bench_pol_spoof.py [--epochs 10,40] [--width 16] [--threads 1] [--zhang1-rounds 1]
"""

from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.attacks.pol_spoof import (
    SpoofCost,
    cost_ratio,
    flat_state,
    reference_distance,
    sorted_initialisation,
    state_of,
)
from modeldeed.attacks.pol_spoof_report import SPOOFS, VerdictSummary, make_spoof, spoof_and_verify
from modeldeed.data import load_dataset
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import VerificationPolicy, record_training, verify_proof
from modeldeed.pol.calibrate import propose_delta
from modeldeed.pol.distances import METRICS, distances
from modeldeed.pol.policy import hardened_policy
from modeldeed.training import TrainConfig, accuracy, train


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}g}"


def errors(summary: VerdictSummary) -> str:
    e = summary.max_normalised_error
    return f"{fmt(e.get('l2'))} / {fmt(e.get('linf'))}" if e else "none replayed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", default="10,40", help="honest proof lengths in epochs (default: 10,40)")
    parser.add_argument("--width", type=int, default=16, help="cnn width (default: 16)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--k", type=int, default=10, help="the honest proof's checkpoint interval (default: 10)")
    parser.add_argument("--methods", default=",".join(SPOOFS), help="spoofs to run (default: all)")
    parser.add_argument("--zhang1-rounds", type=int, default=1, help="Attack I L-BFGS rounds (reference: 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_dataset("digits")
    data = splits.train
    spec = spec_for_data("cnn", data.input_shape, data.num_classes, {"width": args.width})
    params = sum(p.numel() for p in build_model(spec).parameters())
    print(
        f"digits ({len(data)} training samples), cnn width {args.width} ({params} parameters), batch 32, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, {platform.machine()}"
    )
    settings = {"zhang1": {"rounds": args.zhang1_rounds}, "blindfold": {"batch_size": 8}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in (int(e) for e in args.epochs.split(",")):
            config = TrainConfig(epochs=epochs, batch_size=32, seed=0)
            steps = epochs * config.steps_per_epoch(len(data))
            started = time.perf_counter()
            train(build_model(spec, seed=0), data, config, progress=False)
            honest = SpoofCost(
                gradient_evaluations=float(steps), training_steps=steps, wall_seconds=time.perf_counter() - started
            )
            model = build_model(spec, seed=0)
            proof = Path(tmp) / f"honest-{epochs}"
            started = time.perf_counter()
            record_training(model, data, config, proof, spec=spec, checkpoint_every=args.k, init_seed=0, progress=False)
            recording = time.perf_counter() - started
            reference = VerdictSummary.of(verify_proof(proof, data, VerificationPolicy.reference()))
            hardened = VerdictSummary.of(verify_proof(proof, data, hardened_policy()))
            torch.set_num_threads(2 if args.threads == 1 else 1)
            other = VerdictSummary.of(verify_proof(proof, data, VerificationPolicy.reference()))
            torch.set_num_threads(args.threads)
            # pol calibrate's rule (delta = min(10 eps, sqrt(eps d_ref))) applied to the cross-thread replay error
            # just measured: what a per-machine calibration of this honest proof proposes.
            eps = other.max_normalised_error
            tight = VerificationPolicy.reference(delta={m: propose_delta(eps.get(m, 0.0), 1.0, 10.0) for m in METRICS})
            w0, _ = sorted_initialisation(model, spec, seed=0)
            gap = distances(flat_state(model, w0), flat_state(model, state_of(model)))
            d_ref = reference_distance(model, state_of(model))
            needed = max(math.ceil(gap[m] / (0.5 * tight.delta[m] * d_ref[m])) for m in ("l1", "l2", "linf"))
            print(
                f"\nhonest: {epochs} epochs = {steps} steps, test accuracy {accuracy(model, splits.test):.3f}; "
                f"training {honest.wall_seconds:.1f} s, recording the proof (k = {args.k}) {recording:.1f} s"
            )
            rows.append(
                (epochs, "honest", steps, honest, honest, reference, hardened, verify_proof(proof, data, tight))
            )
            print(
                f"  honest proof: reference {'accepted' if reference.accepted else 'REJECTED'}, hardened "
                f"{'accepted' if hardened.accepted else 'REJECTED ' + str(hardened.failed())}; replay error / d_ref "
                f"(l2 / linf) {errors(reference)} on {args.threads} thread(s), {errors(other)} on "
                f"{2 if args.threads == 1 else 1} (reference {'accepted' if other.accepted else 'REJECTED'})"
            )
            shown = ", ".join(f"{m} {v:.3g}" for m, v in tight.delta.items())
            print(
                f"  calibrated normalised delta (pol calibrate's rule on that error): {shown}; a straight-line spoof "
                f"from the sort-trick W0 would need {needed} intervals to stay within it"
            )
            for method in args.methods.split(","):
                spoof = make_spoof(method, progress=False, **settings.get(method, {}))
                report = spoof_and_verify(
                    spoof, model, spec, data, config=config, out=Path(tmp) / f"{method}-{epochs}", honest_cost=honest
                )
                calibrated = verify_proof(report.proof, data, tight)
                rows.append(
                    (
                        epochs,
                        method,
                        report.spoof.trajectory.total_steps,
                        report.spoof.cost,
                        honest,
                        report.reference,
                        report.hardened,
                        calibrated,
                    )
                )
                print(
                    f"  {method}: {report.spoof.trajectory.total_steps} steps, {report.spoof.cost.wall_seconds:.1f} s",
                    flush=True,
                )
    print(
        "\n| honest epochs | proof | steps | gradient evaluations | ratio | wall s | ratio | reference | "
        "error/d_ref l2 / linf | relative error | calibrated delta | hardened rejects by |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |")
    for epochs, method, steps, cost, honest, reference, hardened, calibrated in rows:
        ratio = cost_ratio(cost, honest)
        failed = ", ".join(hardened.failed()) if hardened is not None and hardened.failed() else "(accepted)"
        print(
            f"| {epochs} | {method} | {steps} | {cost.gradient_evaluations:.0f} | "
            f"{fmt(ratio['gradient_evaluations'])} | {cost.wall_seconds:.2f} | {fmt(ratio['wall_time'])} | "
            f"{'accepted' if reference.accepted else 'rejected'} | {errors(reference)} | "
            f"{fmt(reference.max_relative_error)} | {'accepted' if calibrated.accepted else 'rejected'} | {failed} |"
        )


if __name__ == "__main__":
    main()
