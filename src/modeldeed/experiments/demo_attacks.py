"""The demo's watermark attacks: one strength of every attack type, and strength sweeps for the curves.

The sweeps are what Adi et al.'s Fig. 6 and the Watermark-Robustness-Toolbox plots show: accuracy against the
attack's strength. Weight pruning and Gaussian weight noise only edit weights (a verification each, well under
a second on digits), so they get six and five strengths; RTAL, which trains, gets three epoch counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..attacks import RTAL, GaussianNoise, MagnitudePruning, SuiteEntry, default_suite, paper_settings, select
from ..training import TrainConfig

# One strength of every attack type, to keep the demo near two minutes; ("all",) runs the whole suite.
DEMO_ATTACKS = (
    "ftll",
    "ftal",
    "rtll",
    "rtal",
    "piracy-ftal",
    "transfer",
    "fine-prune-0.5",
    "prune-0.6",
    "quantize-4bit",
    "noise-0.3",
    "distill-soft",
    "preprocess-blur-1",
)


@dataclass(frozen=True)
class Sweep:
    """One attack at several strengths: `make(strength, tuned, common)` builds the attack."""

    attack: str
    parameter: str
    strengths: tuple[float, ...]
    make: Callable[[float, dict[str, Any], dict[str, Any]], Any]


SWEEPS: dict[str, Sweep] = {
    "prune": Sweep(
        "prune",
        "sparsity (share of weights zeroed)",
        (0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
        lambda s, tuned, common: MagnitudePruning(sparsity=s, **common),
    ),
    "noise": Sweep(
        "noise",
        "noise std (relative to each tensor's)",
        (0.1, 0.3, 0.6, 1.0, 1.5),
        lambda s, tuned, common: GaussianNoise(std=s, **common),
    ),
    "rtal": Sweep(
        "rtal",
        "epochs of RTAL",
        (1, 2, 5),
        lambda s, tuned, common: RTAL(**{**tuned, "epochs": int(s)}),
    ),
}
DEMO_SWEEPS = tuple(SWEEPS)


def demo_entries(config: TrainConfig, names: tuple[str, ...], *, epochs: int, seed: int) -> list[SuiteEntry]:
    """The suite's entries named in `names` (all of them for ("all",)), with the demo's epochs and seed."""
    entries = default_suite(config, epochs=epochs, seed=seed, progress=False)
    return entries if "all" in names else select(entries, names)


def sweep_entries(
    config: TrainConfig, names: tuple[str, ...], *, epochs: int, seed: int
) -> list[tuple[Sweep, float, SuiteEntry]]:
    """(sweep, strength, entry) for every strength of every sweep named (unknown names: ModeldeedError)."""
    from ..errors import ModeldeedError

    unknown = sorted(set(names) - set(SWEEPS))
    if unknown:
        raise ModeldeedError(f"unknown sweeps {', '.join(unknown)}; choose from {', '.join(SWEEPS)}")
    common: dict[str, Any] = {"seed": seed, "progress": False}
    tuned = {**paper_settings(config), "epochs": epochs, **common}
    chosen = []
    for name in names:
        sweep = SWEEPS[name]
        for strength in sweep.strengths:
            label = f"{sweep.attack}-{strength:g}" + (" epochs" if name == "rtal" else "")
            chosen.append((sweep, strength, SuiteEntry(label, sweep.make(strength, tuned, common))))
    return chosen
