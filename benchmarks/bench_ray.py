"""Proof-of-learning verification with Ray (one interval per task, 2 workers) against the serial verifier.

One proof is recorded; for each count N of challenged intervals the same N intervals (the first N) are replayed
by the serial verifier (`verify_proof`, engine None) and by a local 2-CPU Ray instance (`--engine ray`), in
alternating order over --repeats rounds in one process. Both verdicts must be equal field for field (the
per-interval distances bit for bit). Reported: medians, the speed-up serial / ray, one interval's replay time
(serial verify with N intervals minus the same verify without the replay check, over N) and Ray's per-task
overhead: an empty task's round trip, and the fixed cost of a replay task (re-reading and hashing the proof,
building the model) measured on the workers. CPU seconds are this process's plus, for Ray, those each replay task
took on its worker: on a shared machine whose scheduler shares CPU between sessions (Linux autogroup), the
workers of one command get one session's share, and the CPU column says what the wall clock cannot.

    python benchmarks/bench_ray.py --counts 4,8,16 --k 20 --epochs 8 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from modeldeed.data import load_dataset
from modeldeed.engine.ray_engine import RayEngine
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import VerificationPolicy, distributed, record_training, verify_proof
from modeldeed.pol.distributed import DatasetRef
from modeldeed.training import TrainConfig

original_replay_task = distributed.replay_task


def empty(item: int) -> int:
    return item


def first(count: int):  # type: ignore[no-untyped-def]
    def selector(intervals, q, metrics, proof_id):  # type: ignore[no-untyped-def]
        return [i.index for i in intervals][:count]

    selector.__name__ = f"first_{count}"
    return selector


def timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


WORKER_CPU: list[float] = []  # CPU seconds of each replay task, measured on its worker


def measured_replay_task(task):  # type: ignore[no-untyped-def]
    """distributed.replay_task, also returning the CPU seconds it took on the worker (pickled by value from here)."""
    started = time.process_time()
    answer = original_replay_task(task)
    answer["cpu_s"] = time.process_time() - started
    return answer


def collecting_map(engine_map):  # type: ignore[no-untyped-def]
    def map_(fn, items, gpus=0.0):  # type: ignore[no-untyped-def]
        answers = engine_map(fn, items, gpus=gpus)
        WORKER_CPU.extend(a.pop("cpu_s") for a in answers if isinstance(a, dict) and "cpu_s" in a)
        return answers

    return map_


def cpu_timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Wall seconds, and CPU seconds of this process plus those its replay tasks took on the workers."""
    WORKER_CPU.clear()
    cpu = time.process_time()
    wall, value = timed(function, *args, **kwargs)
    return wall, time.process_time() - cpu + sum(WORKER_CPU), value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--model-args", default="{}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--k", type=int, default=20, help="steps per interval")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--counts", default="4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    torch.set_num_threads(1)
    data = load_dataset("digits").train
    spec = spec_for_data(args.model, data.input_shape, data.num_classes, args.model_args)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        proof = Path(tmp) / "proof"
        record_training(
            build_model(spec, seed=0),
            data,
            config,
            proof,
            spec=spec,
            checkpoint_every=args.k,
            init_seed=0,
            progress=False,
        )
        steps = config.epochs * config.steps_per_epoch(len(data))
        intervals = -(-steps // args.k)
        if max(counts) > intervals:
            raise SystemExit(f"the proof has {intervals} intervals, fewer than {max(counts)}")
        started, engine = timed(RayEngine, "local", num_cpus=args.workers)
        distributed.replay_task = measured_replay_task  # the verifier looks it up in its module at each map
        engine.map = collecting_map(engine.map)  # type: ignore[method-assign]
        with engine:
            warm, _ = timed(engine.map, empty, list(range(args.workers)))
            ref = DatasetRef("digits")
            base = VerificationPolicy(check_replay=False, check_initialisation=False)
            policies = {n: dataclasses.replace(base, check_replay=True, selector=first(n)) for n in counts}
            verify_proof(proof, data, policies[counts[0]], engine=engine, data_ref=ref)  # workers import torch once
            print(
                f"{args.model} on digits ({len(data)} samples, batch {args.batch_size}), {steps} steps, k = {args.k} "
                f"({intervals} intervals), 1 thread per replay, Ray with {args.workers} CPUs; {args.repeats} "
                f"alternating rounds. Ray start {started:.1f} s, first tasks (cold workers) {warm:.1f} s."
            )
            times: dict[str, list[float]] = {"base": [], "empty": []}
            times.update({f"{kind}{n}": [] for n in counts for kind in ("serial", "ray")})
            cpu: dict[str, list[float]] = {f"{kind}{n}": [] for n in counts for kind in ("serial", "ray")}
            for round_ in range(args.repeats):
                order = counts if round_ % 2 == 0 else list(reversed(counts))
                times["base"].append(timed(verify_proof, proof, data, base)[0])
                times["empty"].append(statistics.median(timed(engine.map, empty, [0])[0] for _ in range(20)))
                for n in order:
                    kinds = ("serial", "ray") if round_ % 2 == 0 else ("ray", "serial")
                    verdicts = {}
                    for kind in kinds:
                        chosen = engine if kind == "ray" else None
                        seconds, cpu_s, verdicts[kind] = cpu_timed(
                            verify_proof, proof, data, policies[n], engine=chosen, data_ref=ref
                        )
                        times[f"{kind}{n}"].append(seconds)
                        cpu[f"{kind}{n}"].append(cpu_s)
                    a, b = verdicts["serial"], verdicts["ray"]
                    assert a.accepted and a == b and len(a.intervals) == n, (a.reasons, b.reasons)
            fixed = worker_fixed_cost(engine, proof, ref, args.workers)
    median = {name: statistics.median(values) for name, values in times.items()}
    per_interval = statistics.median(
        (times[f"serial{n}"][r] - times["base"][r]) / n for n in counts for r in range(args.repeats)
    )
    print(f"verify without replays (integrity, schedule, data): {median['base']:.3f} s")
    print(f"one interval's replay ({args.k} steps), serial: {per_interval * 1000:.1f} ms")
    print(
        f"empty Ray task round trip: {median['empty'] * 1000:.2f} ms = {median['empty'] / per_interval:.4f} of one "
        f"interval's replay; a replay task's fixed cost on a worker that has not read the proof yet (hash + load "
        f"proof.json, build the model): {fixed * 1000:.1f} ms = {fixed / per_interval:.3f} of one interval's replay"
    )
    print(
        "| challenged intervals | serial verify s | ray verify s | speed-up serial / ray | per-round speed-ups | "
        "CPU s serial | CPU s ray (driver + workers) | CPU ray / serial |"
    )
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for n in counts:
        ratios = [s / r for s, r in zip(times[f"serial{n}"], times[f"ray{n}"])]
        cs, cr = statistics.median(cpu[f"serial{n}"]), statistics.median(cpu[f"ray{n}"])
        print(
            f"| {n} | {median[f'serial{n}']:.2f} | {median[f'ray{n}']:.2f} | "
            f"{median[f'serial{n}'] / median[f'ray{n}']:.2f} | {', '.join(f'{x:.2f}' for x in ratios)} | "
            f"{cs:.2f} | {cr:.2f} | {cr / cs:.2f} |"
        )
    return 0


def worker_fixed_cost(engine: RayEngine, proof: Path, ref: DatasetRef, workers: int) -> float:
    """Median time on a worker for what a replay task does before its first step (no replay)."""
    costs = engine.map(fixed_cost, [(str(proof), ref)] * (4 * workers))
    return statistics.median(costs)


def fixed_cost(item: tuple[str, DatasetRef]) -> float:
    from modeldeed.pol.checks import prepare_model
    from modeldeed.pol.context import VerificationContext
    from modeldeed.pol.distributed import proof_file_digest, worker_dataset
    from modeldeed.pol.proof import load_proof
    from modeldeed.pol.source import FullSource

    started = time.perf_counter()
    directory = Path(item[0])
    proof_file_digest(directory, False)
    proof, proof_id = load_proof(directory)
    ctx = VerificationContext(directory, FullSource(directory, proof), proof_id, worker_dataset(item[1]), None)
    prepare_model(ctx)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
