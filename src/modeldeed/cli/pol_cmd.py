"""`modeldeed pol verify | calibrate | inspect`: proof-of-learning commands (recording is `train --proof`)."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from ..errors import ModeldeedError
from . import pol_transport_cmd
from .common import add_data_options, add_runtime_options, add_trust_option, apply_runtime, print_json
from .engine_options import add_engine_options, engine_from_args
from .pol_hardened_cmd import add_hardened_options, hardening_from_args, register_commit

CHECK_NAMES = ("schedule", "data", "initialisation", "replay")


def register(commands: argparse._SubParsersAction) -> None:
    from ..pol.distances import METRICS
    from ..pol.policy import DEFAULT_DELTA, DEFAULT_MAX_BUFFER_ERROR, DEFAULT_MAX_RELATIVE_ERROR

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
        "largest updates per epoch and compare the whole training state with the stored checkpoints: bit for bit "
        "in the recorded environment, within a tolerance elsewhere (--reference: the paper's check of the "
        "weights alone). With --hardened, also the checks that stop spoofed proofs and a replay of the intervals "
        "a challenge draws (docs/pol-spoofing.md); PROOF may then be an opened proof (`pol open`). Unless "
        "--threads is given, replays run with the proof's recorded thread count, so that they can be exact. "
        "Exit status: 0 accepted, 1 rejected, 2 bad input.",
    )
    v.add_argument("proof", metavar="PROOF", help="a proof directory (proof.json) or an opened proof (opened.json)")
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
    v.add_argument(
        "--calibration", metavar="FILE", help="use the delta, d_ref and relative bounds of `pol calibrate --out FILE`"
    )
    v.add_argument(
        "--reference",
        action="store_true",
        help="the paper's verifier, for comparison: trained weights within delta x d_ref, the rest of the state "
        "(momentum, buffers) taken as stored",
    )
    v.add_argument(
        "--replay-mode",
        choices=("auto", "exact", "tolerance"),
        default="auto",
        help="auto (default): bit-identical replay when the recorded environment is this one, else the tolerance; "
        "exact: always bit-identical; tolerance: never",
    )
    v.add_argument(
        "--max-relative-error",
        type=float,
        metavar="R",
        help="tolerance: a replay must land within R of the interval's own update, l1 and l2 "
        f"(default: {DEFAULT_MAX_RELATIVE_ERROR:g}, or the calibration's)",
    )
    v.add_argument(
        "--max-buffer-error",
        type=float,
        metavar="R",
        help="tolerance: BatchNorm statistics within R of their replayed change over the interval "
        f"(default: {DEFAULT_MAX_BUFFER_ERROR:g}, or the calibration's)",
    )
    v.add_argument(
        "--model", metavar="DIR", help="the model in dispute: the proof's last checkpoint must be it, bit for bit"
    )
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
    add_engine_options(v, "the replays of the chosen intervals")
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
    c.add_argument(
        "--relative-margin",
        type=float,
        default=2.0,
        help="proposed relative bounds = this times the largest observed (default: 2)",
    )
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
    add_trust_option(i)
    i.set_defaults(handler=run_inspect)

    register_commit(sub)
    pol_transport_cmd.register(sub)


def proof_training_data(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The training split of --data, or of the dataset the proof (or opened proof) names when --data is not given."""
    from ..data import load_dataset

    return load_dataset(proof_dataset_name(args), args.data_dir).train


def proof_dataset_name(args: argparse.Namespace) -> str:
    """--data, or the name of the dataset the proof (or opened proof) names when --data is not given."""
    from ..files import read_json_object
    from ..pol.opened import OPENED_FILE
    from ..pol.proof import MAX_PROOF_BYTES, PROOF_FILE

    name = args.data
    if name is None:
        folder = Path(args.proof)
        file = folder / PROOF_FILE if (folder / PROOF_FILE).exists() else folder / OPENED_FILE
        try:
            doc = read_json_object(file, within=folder, max_bytes=MAX_PROOF_BYTES)
        except ModeldeedError as exc:
            raise ModeldeedError(f"{exc} (pass --data to name the dataset)") from None
        header = doc.get("header", doc) if file.name == OPENED_FILE else doc
        dataset = header.get("dataset") if isinstance(header, dict) else None
        name = dataset.get("name") if isinstance(dataset, dict) else None
        if not isinstance(name, str):
            raise ModeldeedError(f"{file}: names no dataset (pass --data to name it)")
    return name


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
    from ..data import load_dataset
    from ..models import load_model, state_tensors
    from ..pol import VerificationPolicy, load_calibration, verify_proof
    from ..pol.distances import METRICS
    from ..pol.distributed import DatasetRef
    from ..pol.policy import DEFAULT_DELTA, DEFAULT_MAX_BUFFER_ERROR, DEFAULT_MAX_RELATIVE_ERROR

    apply_runtime(args)
    threads_note = match_recorded_threads(args)
    metrics = tuple(args.metric) if args.metric else METRICS
    delta = dict(DEFAULT_DELTA)
    d_ref = None
    relative, buffer = DEFAULT_MAX_RELATIVE_ERROR, DEFAULT_MAX_BUFFER_ERROR
    if args.calibration:
        calibration = load_calibration(args.calibration)
        missing = [m for m in metrics if m not in calibration.metrics]
        if missing:
            raise ModeldeedError(f"{args.calibration}: has no delta for {missing}; pass --metric to choose others")
        delta.update(calibration.normalised_delta)
        d_ref = calibration.d_ref
        relative, buffer = calibration.max_relative_error, calibration.max_buffer_error
    delta.update(parse_deltas(args.delta))
    final = None
    if args.model:
        model, _ = load_model(args.model, trust_code=args.trust_model_code)
        final = state_tensors(model)
    hardening = hardening_from_args(args)
    if args.reference and (hardening is not None or args.replay_mode != "auto"):
        raise ModeldeedError(
            "--reference is the paper's verifier; it cannot be combined with --hardened or --replay-mode"
        )
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
        replay_mode="reference" if args.reference else args.replay_mode,
        max_relative_error=args.max_relative_error if args.max_relative_error is not None else relative,
        max_buffer_error=args.max_buffer_error if args.max_buffer_error is not None else buffer,
        ks_family_wise=not args.ks_per_layer,
        expected_proof_id=args.expect_id,
        final_model=final,
    )
    if hardening is not None:
        policy = hardening.policy(policy)
    progress = progress_file(args)
    name = proof_dataset_name(args)
    data = load_dataset(name, args.data_dir).train
    with engine_from_args(args) as engine:
        verdict = verify_proof(
            args.proof,
            data,
            policy,
            device=args.device,
            trust_code=args.trust_model_code,
            progress=not args.no_progress,
            engine=engine,
            data_ref=DatasetRef.of(name, args.data_dir),
        )
    if progress is not None:
        verdict = with_progress(verdict, args)
    if args.json:
        print_json(verdict.to_json())
    else:
        print_verdict(verdict, policy.metrics, threads_note)
    return 0 if verdict.accepted else 1


def progress_file(args: argparse.Namespace) -> Path | None:
    """The proof's registered progress chain (DIR/progress/progress.json), checked when --log-key is given."""
    from ..pol.progress import PROGRESS_DIR, PROGRESS_FILE

    path = Path(args.proof) / PROGRESS_DIR / PROGRESS_FILE
    if not args.log_key:
        return None
    if not path.is_file():
        if not (args.commitment_receipt or args.statement_receipt):
            raise ModeldeedError(
                "--log-key checks --commitment-receipt / --statement-receipt or the proof's progress chain "
                f"({path} is not there)"
            )
        return None
    if not (Path(args.proof) / "proof.json").is_file():
        raise ModeldeedError(f"{args.proof}: the progress chain is checked against a full proof's checkpoints")
    return path


def with_progress(verdict, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The verdict with the progress chain's registrations as notes, rejected if a registered link disagrees."""
    import dataclasses

    from ..pol.progress import check_progress, proof_leaves
    from ..registry import load_log_key

    leaves, statement = proof_leaves(args.proof)
    check = check_progress(args.proof, leaves, statement, load_log_key(args.log_key))
    reasons = tuple(f"progress: {p}" for p in check.problems)
    return dataclasses.replace(
        verdict,
        accepted=verdict.accepted and not reasons,
        reasons=verdict.reasons + reasons,
        notes=verdict.notes + tuple(check.notes()),
    )


def print_verdict(verdict, metrics, threads_note: str | None) -> None:  # type: ignore[no-untyped-def]
    print(f"proof {verdict.proof_id or '(unreadable)'}: {'ACCEPTED' if verdict.accepted else 'REJECTED'}")
    for check in verdict.checks:
        print(f"  {check.name:<19} {check.status}")
    if threads_note:
        print(f"  note: {threads_note}")
    for note in verdict.notes:
        print(f"  note: {note}")
    for interval in verdict.intervals:
        why = f" [{', '.join(interval.selected_by)}]" if interval.selected_by else ""
        if interval.mode == "exact":
            detail = "bit-identical" if interval.accepted else "not bit-identical"
        else:
            detail = "error / d_ref: " + ", ".join(
                f"{m} {interval.normalised_error[m]:.3g}" for m in metrics if m in interval.normalised_error
            )
        print(
            f"  interval {interval.index} (steps {interval.start_step}-{interval.end_step}){why}: {interval.mode}, "
            f"{detail} -> {'ok' if interval.accepted else 'REJECTED'}"
        )
    for reason in verdict.reasons:
        print(f"  reason: {reason}")


def match_recorded_threads(args: argparse.Namespace) -> str | None:
    """Without --threads, replay with the thread count the proof records (so that replays can be exact)."""
    import os

    import torch

    from ..files import read_json_object
    from ..pol.opened import OPENED_FILE
    from ..pol.proof import MAX_PROOF_BYTES, PROOF_FILE

    if args.threads is not None or args.device != "cpu":
        return None
    folder = Path(args.proof)
    for name, key in ((PROOF_FILE, None), (OPENED_FILE, "header")):
        if (folder / name).is_file():
            try:
                doc = read_json_object(folder / name, within=folder, max_bytes=MAX_PROOF_BYTES)
            except ModeldeedError:
                return None  # the verifier reports the unreadable file
            header = doc.get(key, {}) if key else doc
            threads = header.get("environment", {}).get("threads") if isinstance(header, dict) else None
            limit = max(4 * (os.cpu_count() or 1), 8)
            if type(threads) is int and 1 <= threads <= limit and threads != torch.get_num_threads():
                torch.set_num_threads(threads)
                return f"replayed with {threads} threads, as recorded (--threads N to choose)"
            return None
    return None


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
        relative_margin=args.relative_margin,
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
    print(
        f"  relative error (l1, l2): {', '.join(f'{k} {v:.3g}' for k, v in result.relative_error.items())}; "
        f"state error: {', '.join(f'{k} {v:.3g}' for k, v in result.state_error.items()) or 'none'}; proposed "
        f"--max-relative-error {result.max_relative_error:.3g}, --max-buffer-error {result.max_buffer_error:.3g}"
    )
    if not result.feasible:
        print("  warning: eps_repr >= d_ref for some metric: no delta separates honest replays from independent runs")
    if args.out:
        print(f"  written to {args.out}; use it with `modeldeed pol verify PROOF --calibration {args.out}`")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from ..pol import inspect_proof

    summary = inspect_proof(args.proof, trust_code=args.trust_model_code)
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
