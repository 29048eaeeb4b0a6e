"""Reliability against a real `registry serve` process over HTTP: concurrent submitters, and SIGKILL mid-append.

What must hold: no entry lost or duplicated, every receipt handed out verifies (before and after a crash),
and every checkpoint the log ever signed is the root of a prefix of one and the same sequence of leaves
(which is exactly "every pair of checkpoints is consistent"), with the log's own consistency proofs agreeing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from registry_server import ProcessServer

from modeldeed.cli import main
from modeldeed.registry import RegistryClient, merkle, verify_receipt
from modeldeed.registry.checkpoint import open_checkpoint
from modeldeed.registry.logkey import load_verifier_key
from modeldeed.registry.receipt import Receipt

WORKER = Path(__file__).with_name("registry_worker.py")


def start_workers(url: str, processes: int, count: int, out: Path, label: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, str(WORKER), url, str(count), str(out / f"{label}{i}.jsonl"), f"{label}{i}"])
        for i in range(processes)
    ]


def wait_all(workers: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            assert worker.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def read_receipts(out: Path) -> list[Receipt]:
    receipts = []
    for path in sorted(out.glob("*.jsonl")):
        receipts.extend(Receipt.model_validate(json.loads(line)) for line in path.read_text().splitlines())
    return receipts


def check_one_history(url: str, log_key, receipts: list[Receipt], expected: int) -> None:
    """All receipts verify; indices are exactly 0..expected-1; every signed checkpoint is a prefix root."""
    client = RegistryClient(url)
    latest = open_checkpoint(client.latest_checkpoint().note, log_key)
    assert latest.size == expected
    by_index = {}
    for receipt in receipts:
        verdict = verify_receipt(receipt, log_key)
        assert verdict.valid, verdict.reasons
        previous = by_index.setdefault(receipt.entry.index, receipt.entry)
        assert previous == receipt.entry  # a retried submission got the same entry back, never a second one
    assert sorted(by_index) == list(range(expected))
    assert len({(e.kind, e.digest, e.submitter_key) for e in by_index.values()}) == expected
    times = [by_index[i].time for i in range(expected)]
    assert times == sorted(times)  # the log's time never goes backwards along the index
    tree, nodes = merkle.CompactRange(), {}
    roots = {}
    for index in range(expected):
        if index % 97 == 0:  # the server still serves what the receipts say
            assert client.entry(index) == by_index[index]
        nodes.update(tree.append(by_index[index].leaf_hash()))
        roots[tree.size] = tree.root()
    sizes = sorted({r.entry.checkpoint_size for r in receipts} | {expected})
    for size in sizes:
        checkpoint = open_checkpoint(client.checkpoint(size).note, log_key)
        assert checkpoint.root == roots[size], f"checkpoint {size} is not a prefix of the one history"
    for first, second in zip(sizes, sizes[1:]):
        proof = client.consistency_proof(first, second)
        assert merkle.verify_consistency(first, second, roots[first], roots[second], proof)


@pytest.mark.slow
def test_eight_concurrent_submitters_lose_and_duplicate_nothing(tmp_path):
    assert main(["registry", "init-log", "--out", str(tmp_path / "log.key"), "--origin", "reliability.test/log"]) == 0
    server = ProcessServer(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "log.key", via_cli=False)
    try:
        out = tmp_path / "receipts"
        out.mkdir()
        wait_all(start_workers(server.url, 8, 200, out, "w"), timeout=300)
        receipts = read_receipts(out)
        assert len(receipts) == 1600
        check_one_history(server.url, load_verifier_key(tmp_path / "log.key.pub"), receipts, 1600)
    finally:
        server.stop()


@pytest.mark.slow
def test_sigkill_mid_append_loses_no_receipt_and_keeps_one_history(tmp_path):
    assert main(["registry", "init-log", "--out", str(tmp_path / "log.key"), "--origin", "reliability.test/log"]) == 0
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    server = ProcessServer(db, tmp_path / "log.key", via_cli=False)
    out = tmp_path / "receipts"
    out.mkdir()
    workers = start_workers(server.url, 4, 150, out, "k")
    log_key = load_verifier_key(tmp_path / "log.key.pub")
    try:
        client = RegistryClient(server.url)
        deadline = time.monotonic() + 120
        while True:  # let appends run, then kill the server in the middle of them
            before = open_checkpoint(client.latest_checkpoint().note, log_key) if _has_entries(client) else None
            if before is not None and before.size >= 150:
                break
            assert time.monotonic() < deadline, "the server integrated too little"
            time.sleep(0.05)
        server.kill()
        issued_before_kill = read_receipts(out)
        assert all(w.poll() is None for w in workers)  # the submitters are still going, now retrying
        server = ProcessServer(db, tmp_path / "log.key", port=server.port, via_cli=False)
        wait_all(workers, timeout=300)
        after = RegistryClient(server.url)
        latest = open_checkpoint(after.latest_checkpoint().note, log_key)
        proof = after.consistency_proof(before.size, latest.size)
        assert merkle.verify_consistency(before.size, latest.size, before.root, latest.root, proof)
        for receipt in issued_before_kill:
            assert verify_receipt(receipt, log_key).valid
            assert after.entry(receipt.entry.index) == receipt.entry  # still stored, unchanged
        check_one_history(server.url, log_key, read_receipts(out), 600)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        server.stop()


def _has_entries(client: RegistryClient) -> bool:
    try:
        client.latest_checkpoint()
    except Exception:  # noqa: BLE001 - 404 until the first batch; the loop's deadline bounds the wait
        return False
    return True
