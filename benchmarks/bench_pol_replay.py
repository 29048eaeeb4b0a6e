"""How far honest replays are from exact in another environment: the numbers behind the default tolerance.

Records a proof with --record-threads, then replays its first intervals with --replay-threads through the
verifier's own replay and comparison (`pol.replay`, `pol.compare`), and prints per interval the weights'
error as a fraction of the replayed update (l2), the momentum's effect on the next steps as the same fraction
(lr · mu/(1 - mu) · |M - D| / update) and the BatchNorm statistics' error as a fraction of their replayed
change: what `--max-relative-error` and `--max-buffer-error` must accept for an honest proof.

    python benchmarks/bench_pol_replay.py --model cnn --samples 12800 --steps 800
    python benchmarks/bench_pol_replay.py --model resnet20 --samples 6400 --steps 500 --intervals 5
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import DataSplits, load_dataset
from modeldeed.errors import DataError
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import load_proof, record_training
from modeldeed.pol.compare import Tolerance, compare
from modeldeed.pol.replay import build_checked_model, replay
from modeldeed.pol.source import FullSource
from modeldeed.training import TrainConfig


def fashion_or_digits(samples: int, data_dir: str | None) -> DataSplits:
    """Fashion-MNIST limited to `samples` (from --data-dir, $MODELDEED_DATA or Debian's package), else digits."""
    try:
        splits = load_dataset("fashion-mnist", data_dir)  # --data-dir, else $MODELDEED_DATA, else Debian's
    except DataError:
        splits = load_dataset("digits")
    return DataSplits(splits.train.subset(range(min(samples, len(splits.train)))), splits.test)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--samples", type=int, default=12800)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--intervals", type=int, default=8, help="replay this many intervals from the start")
    parser.add_argument("--record-threads", type=int, default=2)
    parser.add_argument("--replay-threads", type=int, default=1)
    parser.add_argument("--data-dir", help="Fashion-MNIST's folder (default: Debian's package's)")
    args = parser.parse_args()
    data = fashion_or_digits(args.samples, args.data_dir).train
    batch = 64
    config = TrainConfig(epochs=max(1, math.ceil(args.steps * batch / len(data))), batch_size=batch, lr=0.05)
    spec = spec_for_data(args.model, data.input_shape, data.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "proof"
        torch.set_num_threads(args.record_threads)
        started = time.perf_counter()
        record_training(
            build_model(spec, seed=0),
            data,
            config,
            directory,
            spec=spec,
            checkpoint_every=args.k,
            init_seed=0,
            progress=False,
        )
        print(
            f"{args.model} on {data.name} ({len(data)} samples, {config.epochs} epochs, k = {args.k}): recorded with "
            f"{args.record_threads} threads in {time.perf_counter() - started:.0f} s; replayed with "
            f"{args.replay_threads}"
        )
        proof, _ = load_proof(directory)
        source = FullSource(directory, proof)
        model = build_checked_model(proof.header.spec, trust_code=False, source=directory)
        names = [n for n, _ in model.named_parameters()]
        loose = Tolerance("tolerance", ("l2",), {"l2": math.inf}, None, math.inf, math.inf, config.momentum)
        torch.set_num_threads(args.replay_threads)
        print("| interval | weights: error / replayed update | momentum: effect / update | buffers: error / change |")
        print("| ---: | ---: | ---: | ---: |")
        steps = source.checkpoint_steps
        for index in range(min(args.intervals, len(steps) - 1)):
            start = source.checkpoint(index)
            records = [(s, source.record(s)) for s in range(steps[index], steps[index + 1])]
            end = replay(
                proof.header,
                start,
                records,
                data,
                source.samples(),
                end_step=steps[index + 1],
                model=model,
                source=directory,
            )
            outcome = compare(end, source.checkpoint(index + 1), start, proof.header.trained_parameters, names, loose)
            relative = outcome.error["l2"] / outcome.replayed_update["l2"]
            momentum = outcome.state_error.get("momentum", float("nan"))
            buffers = outcome.state_error.get("buffers", float("nan"))
            print(f"| {index} | {relative:.3f} | {momentum:.3f} | {buffers:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
