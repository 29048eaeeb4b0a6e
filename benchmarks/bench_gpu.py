"""On a GPU: ResNet-18 on CIFAR-10-sized data, recording overhead, and how far replays are from exact.

Honest setting: ResNet-18 (modeldeed's CIFAR variant, 11 M parameters), 3x32x32 inputs in 10 classes (random,
seeded: CIFAR-10's shape without its files), a user's own loop with SGD (momentum 0.9, Nesterov) and a cosine
schedule through `PolRecorder`, batch 128, k = 50. It measures, side by side in one process:

- recording overhead: the same loop with and without the recorder, alternating, median ratio and spread;
- replay error on the same GPU (target: bit-identical, exact mode) and GPU -> CPU (tolerance mode), every
  interval replayed, as each interval's error over its own update (l2).

It refuses to run without CUDA (exit 2): the numbers are only meaningful on the GPU they name.

    python benchmarks/bench_gpu.py                          # 2,560 images, 2 epochs, 3 rounds
    python benchmarks/bench_gpu.py --samples 5120 --epochs 1 --repeats 5
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

from modeldeed.data import Dataset
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import VerificationPolicy, verify_proof
from modeldeed.pol.loop import SchedulerDoc, classification_step
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.training import configure_determinism, epoch_batches, rng_devices, seed_run_rng


def cifar_sized(samples: int, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(samples, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    return Dataset("random-cifar10-shape", x, y, tuple(str(i) for i in range(10)))


def setup(data: Dataset, args):  # type: ignore[no-untyped-def]
    spec = spec_for_data("resnet18", data.input_shape, data.num_classes)
    model = build_model(spec, seed=args.seed).to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = -(-len(data) // args.batch_size) * args.epochs
    config, loop = own_loop_settings(
        optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        scheduler=SchedulerDoc(kind="cosine", arguments={"T_max": steps}),
        device=args.device,
    )
    return spec, model, optimizer, config, loop


def plain(data: Dataset, args) -> float:  # type: ignore[no-untyped-def]
    _, model, optimizer, config, loop = setup(data, args)
    torch.cuda.synchronize()
    started = time.perf_counter()
    configure_determinism(True)
    with torch.random.fork_rng(devices=rng_devices(config)):
        seed_run_rng(config)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **loop.scheduler.arguments)
        for epoch in range(args.epochs):
            for batch in epoch_batches(config, len(data), epoch):
                index = torch.from_numpy(batch)
                x, y = data.x[index].to(args.device), data.y[index].to(args.device)
                classification_step(model, optimizer, x, y)
                scheduler.step()
    torch.cuda.synchronize()
    return time.perf_counter() - started


def recorded(data: Dataset, args, proof: Path) -> float:  # type: ignore[no-untyped-def]
    spec, model, optimizer, config, loop = setup(data, args)
    torch.cuda.synchronize()
    started = time.perf_counter()
    with PolRecorder(proof, model, optimizer, data=data, spec=spec, config=config, loop=loop, every=args.every) as rec:
        for epoch in range(args.epochs):
            for batch in rec.batch_sampler(epoch):
                index = torch.tensor(batch)
                rec.step(data.x[index].to(args.device), data.y[index].to(args.device), index)
    torch.cuda.synchronize()
    return time.perf_counter() - started


def replay_errors(proof: Path, data: Dataset, device: str) -> tuple[str | None, list[float], bool]:
    verdict = verify_proof(proof, data, VerificationPolicy(q=0, replay_mode="auto"), device=device)
    errors = [i.relative_error.get("l2", float("nan")) for i in verdict.intervals]
    return verdict.mode, errors, verdict.accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2560)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--every", type=int, default=10, help="checkpoint interval k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        print(
            "bench_gpu.py: no CUDA device (torch.cuda.is_available() is False); this benchmark runs on a GPU only",
            file=sys.stderr,
        )
        return 2
    data = cifar_sized(args.samples, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        ratios = []
        for round_ in range(args.repeats):
            times = {}
            for name in ("plain", "record") if round_ % 2 == 0 else ("record", "plain"):
                if name == "plain":
                    times[name] = plain(data, args)
                else:
                    shutil.rmtree(work / "proof", ignore_errors=True)
                    times[name] = recorded(data, args, work / "proof")
            ratios.append(times["record"] / times["plain"])
            print(
                f"round {round_ + 1}: plain {times['plain']:.2f} s, recorded {times['record']:.2f} s, "
                f"ratio {ratios[-1]:.3f}",
                flush=True,
            )
        print(
            f"{torch.cuda.get_device_name(args.device)}: recorded / plain median {statistics.median(ratios):.3f} "
            f"(pairs {min(ratios):.3f}-{max(ratios):.3f})"
        )
        for device in (args.device, "cpu"):
            mode, errors, accepted = replay_errors(work / "proof", data, device)
            print(
                f"replay on {device}: mode {mode}, {len(errors)} intervals, error / update (l2) max "
                f"{max(errors):.3g} median {statistics.median(errors):.3g}; accepted by the default bounds: "
                f"{accepted}"
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
