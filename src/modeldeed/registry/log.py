"""The append logic: submissions are integrated in batches, each batch one transaction and one checkpoint.

Why batches: a checkpoint signature and a database commit (an fsync) cost far more than hashing one entry,
so the integrator takes whatever is waiting (up to `batch_size` entries, or what arrives within
`batch_wait` seconds of the first), gives every new entry its index, the batch's time and the batch's
final tree size, appends the leaves to the tree, signs exactly one checkpoint over the result and stores
all of it at once. Only after the commit are the submitters answered, so every receipt handed out refers
to a stored checkpoint.

Time comes from the log's clock (UTC, µs) and never goes backwards along the index: a batch's time is
max(now, the previous batch's time). Re-submitting (kind, digest, submitter key) returns the existing
entry: the earliest registration is the one that counts.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import merkle
from .checkpoint import Checkpoint, sign_checkpoint
from .entry import EPOCH, Entry, Submission, format_time, time_micros
from .note import SignerKey
from .receipt import Receipt, make_receipt
from .storage import Storage

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SubmissionRejected(ValueError):
    """A submission that the log will not integrate (bad signature)."""


@dataclass(frozen=True)
class Integrated:
    """The entry a submission resolved to, and whether this submission created it."""

    entry: Entry
    new: bool


class TransparencyLog:
    """One writer over a Storage: integrates batches, and answers proofs and receipts from stored nodes."""

    def __init__(self, storage: Storage, signer: SignerKey, *, clock: Clock = utc_now) -> None:
        self.storage = storage
        self.signer = signer
        self.clock = clock
        storage.initialise(signer.name, str(signer.verifier()))
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        size, last_us = self.storage.state()
        self._range = merkle.CompactRange.load(size, self.storage.read_nodes)
        self._last_us = last_us
        log.info("log %s opened at tree size %d", self.signer.name, size)

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, submissions: Sequence[Submission], *, verified: bool = False) -> list[Integrated]:
        """Integrate one batch synchronously (one transaction, one signed checkpoint if anything is new).

        Every submitter signature is checked first (SubmissionRejected names the problem), unless the caller
        says it has `verified` them already (the service does, to answer a bad one with a 400 at once).
        """
        with self._lock:
            try:
                return self._append(submissions, verified)
            except Exception:
                self._reload()  # the transaction rolled back: continue from what is stored
                raise

    def _append(self, submissions: Sequence[Submission], verified: bool) -> list[Integrated]:
        for submission in () if verified else submissions:  # a forged request gets nothing, not even an old entry
            if not submission.signature_valid():
                raise SubmissionRejected("the submitter's signature over (kind, digest) does not verify")
        keys = [(s.kind, s.digest, s.submitter_key) for s in submissions]
        existing = self.storage.find_registrations(list(dict.fromkeys(keys)))
        fresh: dict[tuple[str, str, str], Submission] = {}
        for key, submission in zip(keys, submissions):
            if key not in existing and key not in fresh:
                fresh[key] = submission
        created: dict[tuple[str, str, str], Entry] = {}
        if fresh:
            old_size = self._range.size
            new_size = old_size + len(fresh)
            now_us = max(time_micros(self.clock()), self._last_us)
            stamp = format_time(EPOCH + timedelta(microseconds=now_us))
            tree = copy.deepcopy(self._range)
            nodes: list[tuple[merkle.NodeId, bytes]] = []
            for offset, (key, submission) in enumerate(fresh.items()):
                entry = Entry(index=old_size + offset, integrated_time=stamp, checkpoint_size=new_size,
                              **submission.model_dump())  # fmt: skip
                nodes.extend(tree.append(entry.leaf_hash()))
                created[key] = entry
            signed = sign_checkpoint(Checkpoint(self.signer.name, new_size, tree.root()), self.signer)
            self.storage.append_batch(old_size, list(created.values()), nodes, signed)
            self._range, self._last_us = tree, now_us
        return [Integrated(existing[k], False) if k in existing else Integrated(created[k], True) for k in keys]

    # ------------------------------------------------------------------ reads (any thread)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.storage.read_nodes)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self.storage.read_nodes)

    def receipt(self, entry: Entry) -> Receipt:
        """The entry's receipt: its integration checkpoint and the audit path against it."""
        note = self.storage.checkpoint(entry.checkpoint_size)
        if note is None:
            raise LookupError(f"checkpoint {entry.checkpoint_size} of entry {entry.index} is not stored")
        return make_receipt(entry, self.inclusion_proof(entry.index, entry.checkpoint_size), note)


class Integrator:
    """A background thread that batches submissions from many callers into `TransparencyLog.append`."""

    def __init__(
        self, log_: TransparencyLog, *, batch_size: int = 256, batch_wait: float = 0.005, verified: bool = False
    ) -> None:
        self.log = log_
        self.verified = verified  # the callers check every signature before submitting
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self._queue: queue.Queue[tuple[Submission, Future[Integrated]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="registry-integrator", daemon=True)
        self._thread.start()

    def submit(self, submission: Submission) -> Future[Integrated]:
        future: Future[Integrated] = Future()
        self._queue.put((submission, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            deadline = time.monotonic() + self.batch_wait
            stop = False
            while len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._integrate(batch)
            if stop:
                return

    def _integrate(self, batch: list[tuple[Submission, Future[Integrated]]]) -> None:
        try:
            results = self.log.append([submission for submission, _ in batch], verified=self.verified)
        except SubmissionRejected:
            # one bad submission must not sink the others: integrate them one by one
            for submission, future in batch:
                self._integrate_one(submission, future)
            return
        except Exception as exc:  # the database failed: every caller gets the error, the log reloads
            log.exception("batch of %d failed", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            future.set_result(result)

    def _integrate_one(self, submission: Submission, future: Future[Integrated]) -> None:
        try:
            future.set_result(self.log.append([submission], verified=self.verified)[0])
        except Exception as exc:
            future.set_exception(exc)
