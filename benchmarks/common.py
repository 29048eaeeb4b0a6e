"""Helpers shared by the benchmarks: pick the dataset, time alternating runs, summarise ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from modeldeed.data import DataSplits, load_dataset
from modeldeed.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def benchmark_data(limit: int | None = None) -> DataSplits:
    """Fashion-MNIST where Debian's package is installed, else the embedded digits."""
    try:
        splits = load_dataset("fashion-mnist", FASHION_DIR)
    except DataError:
        splits = load_dataset("digits")
    if limit is not None and len(splits.train) > limit:
        splits = DataSplits(splits.train.subset(range(limit)), splits.test)
    return splits


def alternate(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Run each candidate once per round, in alternating order, so drift in machine load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_line(times: dict[str, list[float]], numerator: str, denominator: str) -> str:
    num, den = statistics.median(times[numerator]), statistics.median(times[denominator])
    best = min(times[numerator]) / min(times[denominator])
    return (
        f"{numerator} / {denominator}: median {num:.3f} s / {den:.3f} s = {num / den:.3f} "
        f"(best-of {best:.3f}; {len(times[numerator])} alternating rounds)"
    )
