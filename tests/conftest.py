"""Shared fixtures: the embedded digits data, loaded once per session."""

from __future__ import annotations

import pytest
import torch

from modeldeed.data import DataSplits, load_dataset


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change the thread count must not leak it into the next test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
