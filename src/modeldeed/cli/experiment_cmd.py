"""`modeldeed experiment NAME` and `modeldeed report DIR`."""

from __future__ import annotations

import argparse
import sys

from ..experiments import EXPERIMENTS, ExperimentSetting, run_experiment
from .common import add_data_options, add_runtime_options, apply_runtime

LONG_RUN_SECONDS = 180  # above this, a command says how long it will take before it starts


def register(commands: argparse._SubParsersAction) -> None:
    d = ExperimentSetting()
    e = commands.add_parser(
        "experiment",
        help="reproduce one of the papers' experiments",
        description="Run one of the papers' experiments at the scale this machine allows and write DIR/NAME.json. "
        "The watermark experiments share the owner's key and models, trained once per DIR.",
    )
    e.add_argument(
        "name",
        choices=EXPERIMENTS,
        help="functionality (Adi Table 1), unremovability (Fig. 6), "
        "piracy (Fig. 7), transfer (Table 2 analogue), pol (honest vs spoofed proofs)",
    )
    add_data_options(e, default=d.data)
    e.add_argument("--model", default=d.model, help=f"(default: {d.model})")
    e.add_argument("--out", required=True, metavar="DIR", help="results directory (shared by the experiments)")
    e.add_argument("--epochs", type=int, default=d.epochs, help=f"owner's training epochs (default: {d.epochs})")
    e.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    e.add_argument("--lr", type=float, default=d.lr, help=f"(default: {d.lr})")
    e.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    e.add_argument("--trigger-size", type=int, default=d.trigger_size, help=f"|T| (default: {d.trigger_size})")
    e.add_argument(
        "--triggers-per-batch",
        type=int,
        metavar="K",
        help="k trigger images appended to each batch (default: the paper's 2, more on small data)",
    )
    e.add_argument("--train-limit", type=int, metavar="N", help="use only the first N training samples")
    e.add_argument(
        "--attack-epochs",
        type=int,
        metavar="N",
        help="epochs of each fine-tuning attack (default: the paper's, as many as training)",
    )
    e.add_argument(
        "--target",
        metavar="NAME",
        help="transfer: target dataset (default: digits, or a digits-parity task when --data is digits)",
    )
    e.add_argument("--target-dir", metavar="DIR", help="transfer: folder with the target dataset's files")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    add_runtime_options(e)
    e.set_defaults(handler=run_experiment_cmd)

    r = commands.add_parser(
        "report",
        help="render experiment results as a self-contained HTML report",
        description="Read a demo run's DIR/results.json, or the DIR/*.json written by `modeldeed experiment`, and "
        "write DIR/report.html.",
    )
    r.add_argument("directory", metavar="DIR")
    r.add_argument("--out", metavar="FILE", help="where to write the HTML (default: DIR/report.html)")
    r.set_defaults(handler=run_report)


def run_experiment_cmd(args: argparse.Namespace) -> int:
    from ..attacks.planning import describe_duration
    from ..errors import ModeldeedError
    from ..experiments.plan import estimate_experiment_seconds
    from .common import print_json
    from .progress import ProgressPrinter

    apply_runtime(args)
    if args.epochs < 1 or args.trigger_size < 1:
        raise ModeldeedError("--epochs and --trigger-size must be >= 1")
    setting = ExperimentSetting(
        data=args.data,
        data_dir=args.data_dir,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        trigger_size=args.trigger_size,
        triggers_per_batch=args.triggers_per_batch,
        train_limit=args.train_limit,
        device=args.device,
    )
    options: dict = {}
    if args.name != "functionality" and args.attack_epochs is not None:
        options["attack_epochs"] = args.attack_epochs
    if args.name == "transfer":
        options.update(target=args.target, target_dir=args.target_dir)
    seconds = estimate_experiment_seconds(args.name, setting, args.out, **options)
    if seconds > LONG_RUN_SECONDS:
        print(
            f"experiment {args.name}: {describe_duration(seconds)} on this machine (measured from a few training "
            "steps; --epochs, --attack-epochs and --train-limit make it shorter)",
            file=sys.stderr,
            flush=True,
        )
    with ProgressPrinter(enabled=not args.no_progress) as printer:
        record = run_experiment(
            args.name, setting, args.out, progress=not args.no_progress, on_progress=printer, **options
        )
    if args.json:
        print_json(record.to_json())
    else:
        print(
            f"{args.name}: wrote {args.out}/{args.name}.json ({record.to_json()['seconds']} s); "
            f"render with `modeldeed report {args.out}`"
        )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..report.render import build_report

    path = build_report(args.directory, args.out)
    print(f"wrote {path}")
    return 0
