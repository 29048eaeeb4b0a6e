"""`modeldeed pol verify | calibrate | inspect`: proof-of-learning commands (recording is `train --proof`)."""

from __future__ import annotations

import argparse
import statistics

from ..errors import ModeldeedError
from .common import add_data_options, add_runtime_options, add_trust_option, apply_runtime, print_json
from .pol_hardened_cmd import add_hardened_options, hardening_from_args, register_commit

CHECK_NAMES = ("schedule", "data", "initialisation", "replay")


def register(commands: argparse._SubParsersAction) -> None:
    from ..pol.distances import METRICS
    from ..pol.verify import DEFAULT_DELTA

    p = commands.add_parser(
        "pol",
        help="proof of learning: verify, calibrate or inspect a proof (record one with `train --proof`)",
        description="Proof of learning (Jia et al. 2021). Record a proof with `modeldeed train ... --proof DIR`.",
    )
    sub = p.add_subparsers(dest="pol_command", metavar="SUBCOMMAND", required=True)

    v = sub.add_parser(
        "verify",
        help="verify a proof by checking its files and data and replaying its largest updates",
        description="Check a proof's integrity, schedule, batch hashes and W_0 (KS test), then replay the Q "
        "largest updates per epoch and compare with the stored checkpoints. With --hardened, also the checks "
        "that stop spoofed proofs (docs/pol-spoofing.md). Exit status: 0 accepted, 1 rejected, 2 bad input.",
    )
    v.add_argument("proof", metavar="PROOF", help="a proof directory (holding proof.json)")
    add_data_options(v, required=False)
    v.add_argument(
        "--q",
        type=int,
        default=2,
        help="per epoch and metric, replay the Q largest updates; 0 or less: every interval (default: 2)",
    )
    v.add_argument("--all", action="store_true", help="replay every interval (same as --q 0)")
    v.add_argument(
        "--metric",
        action="append",
        choices=METRICS,
        help="distance to rank and accept by; repeat for several (default: all four)",
    )
    v.add_argument(
        "--delta",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="normalised threshold (a fraction of d_ref) for a metric; defaults: "
        + ", ".join(f"{m}={d:g}" for m, d in DEFAULT_DELTA.items()),
    )
    v.add_argument("--calibration", metavar="FILE", help="use the delta and d_ref of `pol calibrate --out FILE`")
    v.add_argument(
        "--expect-id", metavar="HEX", help="reject unless the proof id is this (the id the prover published)"
    )
    v.add_argument("--skip", action="append", default=[], choices=CHECK_NAMES, help="switch a check off (repeatable)")
    v.add_argument(
        "--batch-order",
        action="store_true",
        help="hardened: also require the batches to be the seeded permutation's, with no stored samples",
    )
    v.add_argument(
        "--ks-per-layer",
        action="store_true",
        help="fail the KS test at p < 0.01 per tensor, as the reference code does "
        "(default: 0.01 divided by the number of tensors tested)",
    )
    add_trust_option(v)
    v.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    add_hardened_options(v)
    add_runtime_options(v)
    v.set_defaults(handler=run_verify)

    c = sub.add_parser(
        "calibrate",
        help="measure reproduction error and d_ref, and propose delta",
        description="Replay the proof's largest updates under other thread counts/devices (eps_repr), train an "
        "independent run to the same steps (d_ref), and propose delta with eps_repr < delta < d_ref.",
    )
    c.add_argument("proof", metavar="PROOF", help="a proof directory (holding proof.json)")
    add_data_options(c, required=False)
    c.add_argument(
        "--replay-threads", default="1,2", metavar="N1,N2", help="CPU thread counts to replay under (default: 1,2)"
    )
    c.add_argument("--replay-devices", default="cpu", metavar="D1,D2", help="devices to replay on (default: cpu)")
    c.add_argument("--q", type=int, default=2, help="intervals per epoch and metric to replay; 0: all (default: 2)")
    c.add_argument(
        "--reference-seed", type=int, metavar="S", help="seed of the independent run (default: the proof's seed + 1)"
    )
    c.add_argument(
        "--reference-steps",
        type=int,
        metavar="N",
        help="train the independent run only this many steps (default: the whole proof)",
    )
    c.add_argument("--margin", type=float, default=10.0, help="delta <= margin * eps_repr (default: 10)")
    c.add_argument("--out", metavar="FILE", help="write the calibration as JSON (for `pol verify --calibration`)")
    add_trust_option(c)
    c.add_argument("--json", action="store_true", help="print the calibration as one JSON object")
    add_runtime_options(c)
    c.set_defaults(handler=run_calibrate)

    i = sub.add_parser(
        "inspect",
        help="summarise a proof: steps, checkpoints, size on disk, update-size profile",
        description="Summarise a proof; every file is hash-checked and every checkpoint decoded.",
    )
    i.add_argument("proof", metavar="PROOF", help="a proof directory (holding proof.json)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(handler=run_inspect)

    register_commit(sub)


def proof_training_data(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The training split of --data, or of the dataset the proof names when --data is not given."""
    from ..data import load_dataset
    from ..errors import FormatError
    from ..pol.proof import load_proof

    name = args.data
    if name is None:
        try:
            proof, _ = load_proof(args.proof)
        except FormatError as exc:
            raise ModeldeedError(f"{exc} (pass --data to name the dataset)") from None
        name = proof.header.dataset.name
    return load_dataset(name, args.data_dir).train


def parse_deltas(items: list[str]) -> dict[str, float]:
    from ..pol.distances import METRICS

    out = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or metric not in METRICS or not number > 0:
            raise ModeldeedError(
                f"--delta must be METRIC=VALUE with METRIC one of {', '.join(METRICS)} and VALUE > 0, got {item!r}"
            )
        out[metric] = number
    return out


def run_verify(args: argparse.Namespace) -> int:
    from ..pol import VerificationPolicy, load_calibration, verify_proof
    from ..pol.distances import METRICS
    from ..pol.verify import DEFAULT_DELTA

    apply_runtime(args)
    metrics = tuple(args.metric) if args.metric else METRICS
    delta = dict(DEFAULT_DELTA)
    d_ref = None
    if args.calibration:
        calibration = load_calibration(args.calibration)
        missing = [m for m in metrics if m not in calibration.metrics]
        if missing:
            raise ModeldeedError(f"{args.calibration}: has no delta for {missing}; pass --metric to choose others")
        delta.update(calibration.normalised_delta)
        d_ref = calibration.d_ref
    delta.update(parse_deltas(args.delta))
    policy = VerificationPolicy(
        check_schedule="schedule" not in args.skip,
        check_data="data" not in args.skip,
        check_initialisation="initialisation" not in args.skip,
        check_replay="replay" not in args.skip,
        check_batch_order=args.batch_order,
        q=0 if args.all else args.q,
        metrics=metrics,
        delta=delta,
        d_ref=d_ref,
        ks_family_wise=not args.ks_per_layer,
        expected_proof_id=args.expect_id,
    )
    hardening = hardening_from_args(args)
    if hardening is not None:
        policy = hardening.policy(policy)
    data = proof_training_data(args)
    verdict = verify_proof(args.proof, data, policy, device=args.device, trust_code=args.trust_model_code)
    if args.json:
        print_json(verdict.to_json())
    else:
        print(f"proof {verdict.proof_id or '(unreadable)'}: {'ACCEPTED' if verdict.accepted else 'REJECTED'}")
        for check in verdict.checks:
            print(f"  {check.name:<15} {check.status}")
        for interval in verdict.intervals:
            errors = ", ".join(f"{m} {interval.normalised_error[m]:.3g}" for m in policy.metrics)
            print(
                f"  interval {interval.index} (steps {interval.start_step}-{interval.end_step}): "
                f"error / d_ref: {errors} -> {'ok' if interval.accepted else 'too far'}"
            )
        for reason in verdict.reasons:
            print(f"  reason: {reason}")
    return 0 if verdict.accepted else 1


def run_calibrate(args: argparse.Namespace) -> int:
    from ..pol import calibrate, save_calibration

    apply_runtime(args)
    try:
        threads = tuple(int(t) for t in args.replay_threads.split(",") if t.strip())
    except ValueError:
        raise ModeldeedError(
            f"--replay-threads must be comma-separated integers, got {args.replay_threads!r}"
        ) from None
    if not threads or min(threads) < 1:
        raise ModeldeedError("--replay-threads needs at least one thread count >= 1")
    devices = tuple(d.strip() for d in args.replay_devices.split(",") if d.strip())
    data = proof_training_data(args)
    result = calibrate(
        args.proof,
        data,
        threads=threads,
        devices=devices,
        q=args.q,
        reference_seed=args.reference_seed,
        reference_steps=args.reference_steps,
        margin=args.margin,
        trust_code=args.trust_model_code,
        progress=not args.no_progress,
    )
    if args.out:
        save_calibration(args.out, result)
    if args.json:
        print_json(result.to_json())
        return 0
    print(
        f"proof {result.proof_id}: replayed intervals {list(result.intervals)} under {', '.join(result.settings)}; "
        f"d_ref at steps {list(result.reference_steps)}"
    )
    print(f"  {'metric':<6} {'eps_repr':>11} {'d_ref':>11} {'delta':>11} {'delta/d_ref':>12}")
    for m in result.metrics:
        print(
            f"  {m:<6} {result.epsilon_repr[m]:>11.4g} {result.d_ref[m]:>11.4g} {result.delta[m]:>11.4g} "
            f"{result.normalised_delta[m]:>12.4g}"
        )
    if not result.feasible:
        print("  warning: eps_repr >= d_ref for some metric: no delta separates honest replays from independent runs")
    if args.out:
        print(f"  written to {args.out}; use it with `modeldeed pol verify PROOF --calibration {args.out}`")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from ..pol import inspect_proof

    summary = inspect_proof(args.proof)
    if args.json:
        print_json(summary.to_json())
        return 0
    print(f"proof {summary.proof_id}")
    print(
        f"  {summary.architecture} on {summary.dataset}: {summary.epochs} epochs x {summary.steps_per_epoch} steps "
        f"= {summary.steps} steps; checkpoint every {summary.checkpoint_every} -> {summary.checkpoints} checkpoints"
    )
    if summary.stored_samples:
        print(f"  stored samples: {summary.stored_samples}")
    sizes = summary.sizes
    print(
        f"  size on disk: {mib(sizes['total'])} (checkpoints {mib(sizes['checkpoints'])}, proof.json "
        f"{mib(sizes['proof_json'])}, samples {mib(sizes['samples'])}); uncompressed checkpoints would be "
        f"{mib(summary.reference_bytes)} (ratio {summary.size_ratio:.3f})"
    )
    env = summary.environment
    print(f"  recorded with torch {env.get('torch')} on {env.get('device')}, {env.get('threads')} threads")
    if summary.updates:
        print("  update size (l2) per epoch: min / median / max")
        for epoch in sorted({u.epoch for u in summary.updates}):
            sizes_l2 = [u.update["l2"] for u in summary.updates if u.epoch == epoch]
            print(
                f"    epoch {epoch:>3}: {min(sizes_l2):.4g} / {statistics.median(sizes_l2):.4g} / {max(sizes_l2):.4g}"
                f"  {sparkline(sizes_l2)}"
            )
    return 0


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def sparkline(values: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    top = max(values) if values else 0.0
    if top <= 0:
        return ""
    return "".join(bars[min(int(v / top * (len(bars) - 1) + 0.5), len(bars) - 1)] for v in values[:60])
