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
        zk=False,  # the zero-knowledge stage is tested in test_zk_proofs.py, with the session's one circuit
    )
    return run, run_demo(run, setting, progress=False)


# ------------------------------------------------------------------ the registry's databases


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a real PostgreSQL server: CI's, or a throwaway cluster this session starts and stops."""
    import os

    from postgres_server import Cluster, find_pg_bin, in_ci

    url = os.environ.get("MODELDEED_TEST_POSTGRES")
    if url:
        yield url
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if in_ci():
            pytest.fail("CI must run the PostgreSQL tests: no MODELDEED_TEST_POSTGRES and no initdb installed")
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)")
    cluster = Cluster(bin_dir)
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty registry database of each backend: a SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    from postgres_server import drop_schema, new_schema_url

    server = request.getfixturevalue("postgres_server")
    url, schema = new_schema_url(server)
    try:
        yield url
    finally:
        drop_schema(server, schema)
