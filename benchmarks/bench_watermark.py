"""Watermark embedding overhead and verification time, measured side by side in one process.

Embedding: training with trigger mixing (k triggers appended to every batch) against plain training,
same model, data, seed, epochs and thread count, in alternating rounds; the overhead is the ratio of
the median wall times. The time spent inside the mixing hook itself is reported as a second, less
noisy measure. Verification: Verify of a 100-trigger key on the cnn, with and without loading the
keys and the model from disk.

    python benchmarks/bench_watermark.py                         # digits (20 epochs) and Fashion-MNIST (1 epoch)
    python benchmarks/bench_watermark.py --datasets digits --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import DataSplits, load_dataset
from modeldeed.errors import DataError
from modeldeed.models import ModelInfo, build_model, load_model, save_model, spec_for_data
from modeldeed.training import TrainConfig, train
from modeldeed.watermark import TriggerMixingHook, keygen, load_key_pair, save_key_pair, verify

sys.path.insert(0, str(Path(__file__).parent))
from common import FASHION_DIR  # noqa: E402


class TimedMixing(TriggerMixingHook):
    seconds = 0.0

    def on_batch(self, state, batch):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return super().on_batch(state, batch)
        finally:
            self.seconds += time.perf_counter() - started


def splits(name: str, samples: int) -> DataSplits:
    data = load_dataset(name, FASHION_DIR if name == "fashion-mnist" else None)
    return DataSplits(data.train.subset(range(min(samples, len(data.train)))), data.test)


def embedding(data: DataSplits, epochs: int, k: int, size: int, repeats: int) -> dict:
    mk, _ = keygen(data.train.classes, data.train.input_shape, size=size)
    spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
    config = TrainConfig(epochs=epochs, batch_size=64)

    def run(marked: bool) -> tuple[float, float]:
        model = build_model(spec, seed=0)
        hooks = [TimedMixing.from_key(mk, k=k, seed=0)] if marked else []
        started = time.perf_counter()
        train(model, data.train, config, hooks=hooks, progress=False)
        return time.perf_counter() - started, hooks[0].seconds if hooks else 0.0

    run(True)  # warm-up
    plain, marked, in_hook = [], [], []
    for repeat in range(repeats):
        for arm in (False, True) if repeat % 2 == 0 else (True, False):
            seconds, hook_seconds = run(arm)
            (marked if arm else plain).append(seconds)
            if arm:
                in_hook.append(hook_seconds)
    return {
        "dataset": data.name,
        "samples": len(data.train),
        "epochs": epochs,
        "k": k,
        "triggers": size,
        "steps": config.steps_per_epoch(len(data.train)) * epochs,
        "plain_s": statistics.median(plain),
        "marked_s": statistics.median(marked),
        "ratio": statistics.median(marked) / statistics.median(plain),
        "pair_ratios": [m / p for m, p in zip(marked, plain)],
        "hook_fraction": statistics.median(in_hook) / statistics.median(plain),
    }


def verification(data: DataSplits, size: int, repeats: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench_wm_"))
    try:
        mk, vk = keygen(data.train.classes, data.train.input_shape, size=size)
        save_key_pair(root / "keys", mk, vk, pngs=False)
        spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
        save_model(
            root / "model", build_model(spec, seed=0), ModelInfo(spec, data.train.classes, data.train.input_shape)
        )
        in_memory, from_disk = [], []
        model = load_model(root / "model")[0]
        verify(mk, vk, model)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            verify(mk, vk, model)
            in_memory.append(time.perf_counter() - started)
            started = time.perf_counter()
            keys = load_key_pair(root / "keys")
            verify(*keys, load_model(root / "model")[0])
            from_disk.append(time.perf_counter() - started)
        return {
            "dataset": data.name,
            "triggers": size,
            "verify_s": statistics.median(in_memory),
            "load_and_verify_s": statistics.median(from_disk),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,fashion-mnist")
    parser.add_argument("--digits-epochs", type=int, default=20, help="epochs on digits (default: 20)")
    parser.add_argument("--samples", type=int, default=12800, help="Fashion-MNIST training samples (default: 12800)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (default: 5)")
    parser.add_argument("--k", type=int, default=2, help="triggers per batch (default: 2, the paper's)")
    parser.add_argument("--size", type=int, default=100, help="trigger set size (default: 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("modeldeed.watermark.mark").setLevel(logging.ERROR)  # the few-appearances warning is expected
    rows, verifies = [], []
    for name in args.datasets.split(","):
        try:
            data = splits(name, args.samples)
        except DataError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        epochs = args.digits_epochs if name == "digits" else 1
        rows.append(embedding(data, epochs, args.k, args.size, args.repeats))
        verifies.append(verification(data, args.size, 20))
    if args.json:
        json.dump({"embedding": rows, "verification": verifies, "threads": args.threads}, sys.stdout, indent=2)
        print()
        return 0
    print(f"Embedding overhead, cnn, k = {args.k}, |T| = {args.size}, {args.threads} thread(s), {args.repeats} rounds")
    print("| dataset | steps | plain (median) | with triggers (median) | ratio | per-round ratios | in hook / plain |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dataset']} ({r['samples']} samples, {r['epochs']} epochs) | {r['steps']} | {r['plain_s']:.2f} s | "
            f"{r['marked_s']:.2f} s | {r['ratio']:.3f} | {', '.join(f'{x:.3f}' for x in r['pair_ratios'])} | "
            f"{r['hook_fraction']:.4f} |"
        )
    print()
    print("| dataset | Verify, 100 triggers, model in memory | load keys + model, then Verify |")
    print("| --- | --- | --- |")
    for v in verifies:
        print(f"| {v['dataset']} | {1000 * v['verify_s']:.1f} ms | {1000 * v['load_and_verify_s']:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
