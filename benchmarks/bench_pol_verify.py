"""Hardened verification time / honest training time, and opened proof bytes / full proof bytes, by proof length.

For each number of epochs the model is trained plainly (the honest cost) and recorded under a statement; the
hardened verifier (default soundness: 40 bits at a minimum fabricated fraction of 0.5, top-1 addition, exact
replay on the recording's thread count) verifies the full proof, then the proof is committed to, opened for
the default challenge (with end checkpoints, and --starts-only) and the opened part verified alone. Plain
training and the verifications alternate over --repeats rounds in one process; ratios of medians.

    python benchmarks/bench_pol_verify.py --data digits --model cnn --k 1 --epochs 5,10,20,40
    python benchmarks/bench_pol_verify.py --data fashion-mnist --samples 6400 --k 10 --epochs 5,10,20
    python benchmarks/bench_pol_verify.py --data fashion-mnist --samples 3200 --model resnet20 --k 5 --epochs 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import load_dataset
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import (
    CarriedStatement,
    commit_proof,
    hardened_policy,
    make_statement,
    open_proof,
    record_training,
    verify_proof,
)
from modeldeed.training import TrainConfig, train


def size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def timed(function, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--data-dir", help="Fashion-MNIST's folder (default: Debian's package's)")
    parser.add_argument("--samples", type=int, help="use the first N training samples")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--model-args", default="{}")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--epochs", default="5,10,20")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, args.data_dir).train  # fashion-mnist: --data-dir, $MODELDEED_DATA or Debian's
    if args.samples:
        data = data.subset(range(min(args.samples, len(data))))
    spec = spec_for_data(args.model, data.input_shape, data.num_classes, args.model_args)
    print(
        f"{args.model} on {data.name} ({len(data)} samples, batch {args.batch_size}, k = {args.k}, "
        f"{args.threads} thread(s), {args.repeats} alternating rounds)"
    )
    print(
        "| epochs | steps | intervals N | challenged c | train s | hardened verify s | verify / train | "
        "opened / full bytes | starts-only / full | opened verify / train |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for epochs in (int(e) for e in args.epochs.split(",")):
        config = TrainConfig(epochs=epochs, batch_size=args.batch_size, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            statement, opening = make_statement(data, config, spec, checkpoint_every=args.k)
            carried = CarriedStatement(statement=statement, opening=opening)
            record_training(
                build_model(spec, seed=0),
                data,
                config,
                root / "proof",
                spec=spec,
                checkpoint_every=args.k,
                init_seed=0,
                statement=carried,
                progress=False,
            )
            commitment, _ = commit_proof(root / "proof")
            challenge, _ = open_proof(root / "proof", root / "opened", commitment=commitment)
            open_proof(root / "proof", root / "starts", commitment=commitment, ends=False)
            policy = hardened_policy(statement=statement, commitment=commitment)
            times: dict[str, list[float]] = {"train": [], "verify": [], "opened": []}
            for _ in range(args.repeats):
                times["train"].append(timed(train, build_model(spec, seed=0), data, config, progress=False))
                verdict = verify_proof(root / "proof", data, policy)
                times["verify"].append(timed(verify_proof, root / "proof", data, policy))
                times["opened"].append(timed(verify_proof, root / "opened", data, policy))
            assert verdict.accepted and verdict.mode == "exact", verdict.reasons
            train_s = statistics.median(times["train"])
            full = size(root / "proof")
            print(
                f"| {epochs} | {config.epochs * config.steps_per_epoch(len(data))} | {commitment.intervals} | "
                f"{challenge.count} | {train_s:.2f} | {statistics.median(times['verify']):.2f} | "
                f"{statistics.median(times['verify']) / train_s:.3f} | {size(root / 'opened') / full:.3f} | "
                f"{size(root / 'starts') / full:.3f} | {statistics.median(times['opened']) / train_s:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
