"""Proof-of-learning recording: wall-time overhead and proof size, measured side by side in one process.

For each model, training runs without and with a ProofRecorder (k = 100) alternate (plain, record,
record, plain, ...) on the same data, seeds and thread count; the overhead is the median ratio of the
pairs, and the time spent inside the recorder's hooks is reported as a second, less noisy measure.
The size ratio is the proof's bytes on disk over the reference layout: every checkpoint's weights,
buffers and optimizer state as uncompressed tensors.

    python benchmarks/bench_pol.py                      # cnn and resnet20 on Fashion-MNIST (digits if absent)
    python benchmarks/bench_pol.py --models cnn --samples 6400 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import Dataset, load_dataset
from modeldeed.errors import DataError
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import ProofRecorder, inspect_proof
from modeldeed.training import TrainConfig, train


class TimedRecorder(ProofRecorder):
    """A ProofRecorder that adds up the time spent in its own hooks."""

    seconds = 0.0

    def _timed(self, method, *args):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.seconds += time.perf_counter() - started

    def on_train_start(self, state):  # type: ignore[no-untyped-def]
        return self._timed(super().on_train_start, state)

    def on_batch(self, state, batch):  # type: ignore[no-untyped-def]
        return self._timed(super().on_batch, state, batch)

    def on_step_end(self, state, batch, loss):  # type: ignore[no-untyped-def]
        return self._timed(super().on_step_end, state, batch, loss)

    def on_train_end(self, state):  # type: ignore[no-untyped-def]
        return self._timed(super().on_train_end, state)


def training_data(samples: int) -> Dataset:
    try:
        data = load_dataset("fashion-mnist").train
    except DataError as exc:
        print(f"Fashion-MNIST not available ({exc}); falling back to digits", file=sys.stderr)
        data = load_dataset("digits").train
    return data.subset(range(min(samples, len(data))))


def run(model_name: str, data: Dataset, config: TrainConfig, proof: Path | None, k: int) -> tuple[float, float]:
    spec = spec_for_data(model_name, data.input_shape, data.num_classes)
    model = build_model(spec, seed=config.seed)
    hooks = []
    if proof is not None:
        recorder = TimedRecorder(proof, spec=spec, checkpoint_every=k, init_seed=config.seed)
        hooks.append(recorder)
    started = time.perf_counter()
    train(model, data, config, hooks=hooks, progress=False)
    seconds = time.perf_counter() - started
    return seconds, hooks[0].seconds if hooks else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,resnet20")
    parser.add_argument("--samples", type=int, default=12800, help="training samples (64 per step; default 200 steps)")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs per model (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--k", type=int, default=100, help="checkpoint every k steps (default: 100)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = training_data(args.samples)
    config = TrainConfig(epochs=1, batch_size=64)
    steps = config.steps_per_epoch(len(data))
    results = []
    root = Path(tempfile.mkdtemp(prefix="bench_pol_"))
    try:
        for model_name in args.models.split(","):
            run(model_name, data.subset(range(256)), config, None, args.k)  # warm-up
            ratios, hook_fractions = [], []
            for repeat in range(args.repeats):
                proof = root / f"{model_name}-{repeat}"
                arms = ("plain", "record") if repeat % 2 == 0 else ("record", "plain")
                times: dict[str, tuple[float, float]] = {}
                for arm in arms:
                    times[arm] = run(model_name, data, config, proof if arm == "record" else None, args.k)
                ratios.append(times["record"][0] / times["plain"][0])
                hook_fractions.append(times["record"][1] / times["plain"][0])
                print(
                    f"{model_name} pair {repeat + 1}: plain {times['plain'][0]:.1f} s, record "
                    f"{times['record'][0]:.1f} s (in recorder {times['record'][1]:.2f} s)",
                    file=sys.stderr,
                )
            summary = inspect_proof(root / f"{model_name}-0")
            results.append(
                {
                    "model": model_name,
                    "dataset": data.name,
                    "samples": len(data),
                    "steps": steps,
                    "k": args.k,
                    "threads": args.threads,
                    "wall_ratio": statistics.median(ratios),
                    "wall_ratios": ratios,
                    "recorder_fraction": statistics.median(hook_fractions),
                    "proof_bytes": summary.sizes["total"],
                    "checkpoint_bytes": summary.sizes["checkpoints"],
                    "reference_bytes": summary.reference_bytes,
                    "size_ratio": summary.sizes["total"] / summary.reference_bytes,
                    "checkpoint_size_ratio": summary.size_ratio,
                }
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"PoL recording, {data.name}, {len(data)} samples = {steps} steps, k = {args.k}, {args.threads} thread(s)")
    print(
        "| model | wall time record / plain | time in recorder / plain | proof size / reference | "
        "checkpoints / reference |"
    )
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['model']} | {r['wall_ratio']:.3f} ({', '.join(f'{x:.3f}' for x in r['wall_ratios'])}) | "
            f"{1 + r['recorder_fraction']:.3f} | {r['size_ratio']:.3f} ({r['proof_bytes'] / 2**20:.1f} / "
            f"{r['reference_bytes'] / 2**20:.1f} MiB) | {r['checkpoint_size_ratio']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
