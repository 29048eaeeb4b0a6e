"""Recording a proof from a user's own loop: wall-time overhead against the same loop without recording.

The user's loop: a cnn, AdamW with a cosine schedule, a DataLoader with worker processes over a memory-mapped
dataset (the images read per batch from .npy files), the built-in classification step. The plain run calls the
step function and the scheduler itself; the recorded run hands each batch to `PolRecorder.step` (k = 100). Both
use the same seeded batches and RNG and must end with bit-identical weights. Runs alternate (plain, record,
record, plain, ...) in one process; the ratio is the median of the pairs, with their spread, and the time spent
in the recorder outside the training step is reported as a second, less noisy measure.

    python benchmarks/bench_own_loop.py                         # Fashion-MNIST 6,400 images (digits if absent)
    python benchmarks/bench_own_loop.py --samples 3200 --repeats 3 --workers 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import DataSplits, load_dataset
from modeldeed.data.memmap import ArraySamples, load_memmap, save_memmap
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol.loop import LoopRunner, SchedulerDoc, classification_step
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.training import configure_determinism, epoch_batches, rng_devices, seed_run_rng

sys.path.insert(0, str(Path(__file__).parent))
from common import benchmark_data  # noqa: E402


def setup(data, seed: int, epochs: int, batch: int):  # type: ignore[no-untyped-def]
    spec = spec_for_data("cnn", data.input_shape, data.num_classes)
    model = build_model(spec, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    steps = -(-len(data) // batch) * epochs
    scheduler = SchedulerDoc(kind="cosine", arguments={"T_max": steps})
    config, loop = own_loop_settings(optimizer, epochs=epochs, batch_size=batch, seed=seed, scheduler=scheduler)
    return spec, model, optimizer, config, loop


def loader(samples, batches, workers: int, epoch: int):  # type: ignore[no-untyped-def]
    options = {"num_workers": workers} if workers else {}
    generator = torch.Generator().manual_seed(epoch)
    return torch.utils.data.DataLoader(samples, batch_sampler=batches, generator=generator, **options)


def plain(data, samples, args) -> tuple[float, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    """The user's loop as they would write it: step function and scheduler, nothing recorded."""
    _, model, optimizer, config, loop = setup(data, args.seed, args.epochs, args.batch_size)
    started = time.perf_counter()
    configure_determinism(True)
    with torch.random.fork_rng(devices=rng_devices(config)):
        seed_run_rng(config)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **loop.scheduler.arguments)
        for epoch in range(args.epochs):
            batches = [b.tolist() for b in epoch_batches(config, len(data), epoch)]
            for _, x, y in loader(samples, batches, args.workers, epoch):
                classification_step(model, optimizer, x, y, accumulation=1, clip_norm=None)
                scheduler.step()
    return time.perf_counter() - started, model.state_dict()


def recorded(data, samples, args, proof: Path) -> tuple[float, float, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    spec, model, optimizer, config, loop = setup(data, args.seed, args.epochs, args.batch_size)
    in_step = 0.0
    original = LoopRunner.run_step

    def timed(self, inputs, labels):  # type: ignore[no-untyped-def]
        nonlocal in_step
        begun = time.perf_counter()
        try:
            return original(self, inputs, labels)
        finally:
            in_step += time.perf_counter() - begun

    started = time.perf_counter()
    outside = 0.0
    LoopRunner.run_step = timed  # type: ignore[method-assign]
    try:
        entered = time.perf_counter()
        with PolRecorder(
            proof, model, optimizer, data=data, spec=spec, config=config, loop=loop, every=args.every
        ) as rec:
            outside += time.perf_counter() - entered
            for epoch in range(args.epochs):
                for indices, x, y in rec.loader(
                    samples, epoch, **({"num_workers": args.workers} if args.workers else {})
                ):
                    begun = time.perf_counter()
                    rec.step(x, y, indices)
                    outside += time.perf_counter() - begun
            entered = time.perf_counter()
        outside += time.perf_counter() - entered
    finally:
        LoopRunner.run_step = original  # type: ignore[method-assign]
    return time.perf_counter() - started, outside - in_step, model.state_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--every", type=int, default=100, help="checkpoint interval k")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="Fashion-MNIST's folder, if not /usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.data_dir:
        full = load_dataset("fashion-mnist", args.data_dir)
        splits = DataSplits(full.train.subset(range(min(args.samples, len(full.train)))), full.test)
    else:
        splits = benchmark_data(args.samples)
    work = Path(tempfile.mkdtemp(prefix="bench-own-"))
    try:
        root = save_memmap(work / "data", DataSplits(splits.train, splits.test.subset(range(10))))
        data = load_memmap(root).train
        samples = ArraySamples(root)
        ratios, recorder_share, identical = [], [], True
        for round_ in range(args.repeats):
            order = ("plain", "record") if round_ % 2 == 0 else ("record", "plain")
            times = {}
            for name in order:
                if name == "plain":
                    times["plain"], plain_state = plain(data, samples, args)
                else:
                    shutil.rmtree(work / "proof", ignore_errors=True)
                    times["record"], in_recorder, record_state = recorded(data, samples, args, work / "proof")
            identical &= all(torch.equal(plain_state[k], record_state[k]) for k in plain_state)
            ratios.append(times["record"] / times["plain"])
            recorder_share.append(in_recorder / times["plain"])
            print(
                f"round {round_ + 1}: plain {times['plain']:.2f} s, recorded {times['record']:.2f} s, "
                f"ratio {ratios[-1]:.3f}, recorder outside the step {in_recorder:.2f} s",
                flush=True,
            )
        steps = -(-len(data) // args.batch_size) * args.epochs
        print(
            f"{data.name.split(':')[0]} {len(data)} images, {steps} steps, k = {args.every}, {args.workers} workers, "
            f"{args.threads} thread(s): recorded / plain median {statistics.median(ratios):.3f} "
            f"(pairs {min(ratios):.3f}-{max(ratios):.3f}); recorder time / plain median "
            f"{statistics.median(recorder_share):.3f}; identical weights: {'yes' if identical else 'NO'}"
        )
        return 0 if identical else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
