"""Shared fixtures: the embedded digits data, loaded once per session."""

from __future__ import annotations

import pytest
import torch

from modeldeed.data import DataSplits, load_dataset

# The tests' models are tiny: one thread is faster than two (measured ~5x on these 2-core machines), and
# it keeps parallel test processes from fighting for cores. Tests that need another count set it.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change the thread count must not leak it into the next test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """One reduced demo run (about 16 CPU seconds), shared by the report tests: (run directory, results)."""
    from modeldeed.experiments.demo import DemoSetting, run_demo

    run = tmp_path_factory.mktemp("demo") / "run"
    setting = DemoSetting(
        epochs=8,
        attack_epochs=2,
        attacks=("ftll", "piracy-ftal", "prune-0.6"),
        sweeps=("prune",),
        spoof_methods=("infinitesimal",),
        checkpoint_every=30,
    )
    return run, run_demo(run, setting, progress=False)
