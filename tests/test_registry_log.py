"""The log over both storage backends (SQLite file, real PostgreSQL): batches, idempotence, time, proofs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from registry_helpers import golden_digest, golden_identity, golden_log_key

from modeldeed.registry import merkle
from modeldeed.registry.checkpoint import open_checkpoint
from modeldeed.registry.identity import Identity
from modeldeed.registry.log import Integrator, SubmissionRejected, TransparencyLog
from modeldeed.registry.note import SignerKey
from modeldeed.registry.receipt import verify_receipt
from modeldeed.registry.storage import ConcurrentWriterError, StorageError, open_storage


class SteppingClock:
    """A clock the test moves, backwards too."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def log_and_storage(db_url):
    storage = open_storage(db_url)
    yield TransparencyLog(storage, golden_log_key()), storage
    storage.close()


def test_batches_idempotence_digest_lookup_and_receipts(log_and_storage):
    tlog, storage = log_and_storage
    alice, bob = golden_identity(), Identity.generate()
    first = tlog.append([alice.submission("watermark-key", golden_digest(i)) for i in range(5)])
    assert [r.entry.index for r in first] == [0, 1, 2, 3, 4] and all(r.new for r in first)
    assert {r.entry.checkpoint_size for r in first} == {5}
    # the same (kind, digest, key) again, also twice within one batch: the existing entry, nothing appended
    second = tlog.append([alice.submission("watermark-key", golden_digest(2)), bob.submission("watermark-key",
                          golden_digest(2)), bob.submission("watermark-key", golden_digest(2))])  # fmt: skip
    assert [(r.entry.index, r.new) for r in second] == [(2, False), (5, True), (5, True)]
    assert second[0].entry == first[2].entry and tlog.size == 6
    assert [e.index for e in storage.entries_by_digest(golden_digest(2))] == [2, 5]
    assert storage.entries_by_digest("00" * 32) == []
    assert storage.entry(5) == second[1].entry and storage.entry(6) is None
    assert [e.index for e in storage.recent_entries(4)] == [5, 4, 3, 2]
    assert [e.index for e in storage.recent_entries(2, before=3)] == [2, 1]
    verifier = golden_log_key().verifier()
    for index in range(6):
        receipt = tlog.receipt(storage.entry(index))
        assert verify_receipt(receipt, verifier).valid
    # one signed checkpoint per batch, servable by size; none for sizes in between
    assert open_checkpoint(storage.checkpoint(5), verifier).size == 5
    assert open_checkpoint(storage.latest_checkpoint(), verifier).size == 6
    assert storage.checkpoint(3) is None


def test_every_pair_of_checkpoints_is_consistent_and_roots_match_nodes(log_and_storage):
    tlog, storage = log_and_storage
    alice = golden_identity()
    sizes = []
    for batch in range(6):
        tlog.append([alice.submission("model", golden_digest(100 * batch + i)) for i in range(batch + 1)])
        sizes.append(tlog.size)
    verifier = golden_log_key().verifier()
    checkpoints = {s: open_checkpoint(storage.checkpoint(s), verifier) for s in sizes}
    for s in sizes:
        assert merkle.root_from_nodes(s, storage.read_nodes) == checkpoints[s].root
    for a in sizes:
        for b in sizes:
            if a <= b:
                proof = tlog.consistency_proof(a, b)
                assert merkle.verify_consistency(a, b, checkpoints[a].root, checkpoints[b].root, proof)


def test_time_never_goes_backwards_along_the_index(db_url):
    storage = open_storage(db_url)
    clock = SteppingClock()
    tlog = TransparencyLog(storage, golden_log_key(), clock=clock)
    alice = golden_identity()
    tlog.append([alice.submission("claim", golden_digest(0))])
    clock.now -= timedelta(hours=1)  # the host's clock is set back
    tlog.append([alice.submission("claim", golden_digest(1))])
    clock.now += timedelta(hours=2)
    tlog.append([alice.submission("claim", golden_digest(2))])
    times = [storage.entry(i).time for i in range(3)]
    assert times[0] == times[1] < times[2]
    # a restarted log remembers the last time even if its clock is behind
    clock.now -= timedelta(days=1)
    reopened = TransparencyLog(storage, golden_log_key(), clock=clock)
    reopened.append([alice.submission("claim", golden_digest(3))])
    assert storage.entry(3).time == times[2]
    storage.close()


def test_a_reopened_log_continues_the_same_tree(db_url):
    storage = open_storage(db_url)
    alice = golden_identity()
    TransparencyLog(storage, golden_log_key()).append([alice.submission("model", golden_digest(i)) for i in range(7)])
    storage.close()
    storage = open_storage(db_url)
    tlog = TransparencyLog(storage, golden_log_key())
    assert tlog.size == 7
    tlog.append([alice.submission("model", golden_digest(7))])
    verifier = golden_log_key().verifier()
    old, new = open_checkpoint(storage.checkpoint(7), verifier), open_checkpoint(storage.checkpoint(8), verifier)
    assert merkle.verify_consistency(7, 8, old.root, new.root, tlog.consistency_proof(7, 8))
    storage.close()


def test_one_database_holds_one_log_and_one_writer(db_url):
    storage = open_storage(db_url)
    tlog = TransparencyLog(storage, golden_log_key())
    with pytest.raises(StorageError, match="one database holds one log"):
        TransparencyLog(storage, SignerKey.generate(golden_log_key().name))
    other = open_storage(db_url)
    rival = TransparencyLog(other, golden_log_key())
    alice = golden_identity()
    tlog.append([alice.submission("model", golden_digest(1))])
    with pytest.raises(ConcurrentWriterError):
        rival.append([alice.submission("model", golden_digest(2))])
    rival.append([alice.submission("model", golden_digest(2))])  # it reloaded: now it appends after entry 0
    assert tlog.storage.entry(1).digest == golden_digest(2)
    storage.close()
    other.close()


def test_bad_signatures_are_refused_and_do_not_sink_a_batch(log_and_storage):
    tlog, storage = log_and_storage
    alice = golden_identity()
    forged = alice.submission("model", golden_digest(1)).model_copy(update={"digest": golden_digest(2)})
    with pytest.raises(SubmissionRejected):
        tlog.append([forged])
    assert tlog.size == 0
    integrator = Integrator(tlog, batch_wait=0.05)
    good = [integrator.submit(alice.submission("model", golden_digest(i))) for i in range(3)]
    bad = integrator.submit(forged)
    assert sorted(f.result(timeout=10).entry.index for f in good) == [0, 1, 2]
    with pytest.raises(SubmissionRejected):
        bad.result(timeout=10)
    integrator.close()


def test_integrator_batches_many_threads(log_and_storage):
    tlog, storage = log_and_storage
    integrator = Integrator(tlog, batch_size=64, batch_wait=0.01)
    identities = [Identity.generate() for _ in range(4)]
    results: list = []

    def submit_all(identity):
        futures = [integrator.submit(identity.submission("pol-statement", golden_digest(i))) for i in range(50)]
        results.extend(f.result(timeout=30) for f in futures)

    threads = [threading.Thread(target=submit_all, args=(identity,)) for identity in identities]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    integrator.close()
    assert sorted(r.entry.index for r in results) == list(range(200))
    batches = {r.entry.checkpoint_size for r in results}
    assert len(batches) < 200  # they were batched
    assert all(storage.checkpoint(size) is not None for size in batches)
