"""Where the log keeps its entries, tree nodes and signed checkpoints: one interface, two SQL backends.

Why this shape: the log has one writer (the service's integrator) and many readers. A batch is written in
one transaction together with the checkpoint signed over it, so after a crash either the batch and its
checkpoint are stored or neither is, and a checkpoint that was handed out always has its entries behind it.
Every perfect subtree's hash is stored (`nodes`), so roots and proofs cost O(log n) reads (see merkle.py).

The SQL is written once here; `sqlite.py` and `postgres.py` supply the connection, the placeholder style
and the column types. `open_storage(url)` picks the backend by URL: `sqlite:///path/to/registry.db` or
`postgresql://user@host/dbname`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ModeldeedError
from .checkpoint import SignedCheckpoint
from .entry import Entry, parse_time, time_micros
from .merkle import NodeId

_ENTRY_COLUMNS = "idx, integrated_time, checkpoint_size, kind, digest, submitter_key, signature"


class StorageError(ModeldeedError):
    """The database refused an operation, or belongs to another log."""


class ConcurrentWriterError(StorageError):
    """The tree grew under this writer: another process appends to the same database."""


class Storage(ABC):
    """Backend-neutral access to the log's tables. Subclasses give connections and dialect details."""

    placeholder = "?"
    blob_type = "BLOB"

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._guard = threading.Lock()

    # ------------------------------------------------------------------ backend hooks

    @abstractmethod
    def _connect(self) -> Any:
        """A new connection in autocommit mode (transactions are opened explicitly with BEGIN)."""

    def _begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN")

    def _lock_meta(self, cursor: Any) -> None:
        """Take the write lock before reading what the transaction will update (Postgres: FOR UPDATE)."""
        return None  # SQLite's BEGIN IMMEDIATE already holds the database's one write lock

    @property
    def url(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder) if self.placeholder != "?" else text

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._connection().cursor()
        try:
            cursor.execute(self._sql(query), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self._connection().cursor()
        self._begin(cursor)
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def close(self) -> None:
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ schema

    def initialise(self, origin: str, verifier_key: str) -> None:
        """Create the tables if needed, and bind the database to one log key (refuse another key's)."""
        blob = self.blob_type
        statements = [
            """CREATE TABLE IF NOT EXISTS entries (
                idx BIGINT PRIMARY KEY, integrated_time TEXT NOT NULL, time_us BIGINT NOT NULL,
                checkpoint_size BIGINT NOT NULL, kind TEXT NOT NULL, digest TEXT NOT NULL,
                submitter_key TEXT NOT NULL, signature TEXT NOT NULL, UNIQUE (kind, digest, submitter_key))""",
            "CREATE INDEX IF NOT EXISTS entries_by_digest ON entries (digest, idx)",
            f"""CREATE TABLE IF NOT EXISTS nodes (
                level INTEGER NOT NULL, idx BIGINT NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx))""",
            f"CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, note {blob} NOT NULL)",
            """CREATE TABLE IF NOT EXISTS meta (
                id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, verifier_key TEXT NOT NULL,
                tree_size BIGINT NOT NULL, last_time_us BIGINT NOT NULL)""",
        ]
        with self._transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)
            cursor.execute("SELECT origin, verifier_key FROM meta WHERE id = 1")
            row = cursor.fetchone()
            if row is None:
                cursor.execute(
                    self._sql(
                        "INSERT INTO meta (id, origin, verifier_key, tree_size, last_time_us) VALUES (1, ?, ?, 0, 0)"
                    ),
                    (origin, verifier_key),
                )
            elif tuple(row) != (origin, verifier_key):
                raise StorageError(
                    f"{self.url}: this database holds the log {row[0]!r} signed by {row[1]!r}, "
                    f"not {origin!r} ({verifier_key!r}); one database holds one log"
                )

    # ------------------------------------------------------------------ reads

    def state(self) -> tuple[int, int]:
        """(tree size, time of the last entry in µs) as committed."""
        rows = self._rows("SELECT tree_size, last_time_us FROM meta WHERE id = 1")
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The hashes of perfect subtrees, in the order asked; a NodeReader for merkle.py.

        One statement of indexed point lookups (UNION ALL), so a proof costs one round trip and O(log n)
        index probes whatever the size of the tree (a row-value IN list would scan the table in SQLite).
        """
        if not ids:
            return []
        found: dict[tuple[int, int], bytes] = {}
        unique = sorted({(int(node[0]), int(node[1])) for node in ids})
        for start in range(0, len(unique), 100):
            chunk = unique[start : start + 100]
            query = " UNION ALL ".join(["SELECT level, idx, hash FROM nodes WHERE level = ? AND idx = ?"] * len(chunk))
            for level, idx, digest in self._rows(query, [x for node in chunk for x in node]):
                found[(int(level), int(idx))] = bytes(digest)
        missing = [node for node in unique if node not in found]
        if missing:
            raise StorageError(f"{self.url}: {len(missing)} tree nodes are missing, e.g. {missing[0]}")
        return [found[(int(node[0]), int(node[1]))] for node in ids]

    @staticmethod
    def _entry(row: Sequence[Any]) -> Entry:
        index, time, size, kind, digest, key, signature = row
        return Entry(index=int(index), integrated_time=time, checkpoint_size=int(size), kind=kind, digest=digest,
                     submitter_key=key, signature=signature)  # fmt: skip

    def entry(self, index: int) -> Entry | None:
        rows = self._rows(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE idx = ?", (index,))
        return self._entry(rows[0]) if rows else None

    def entries_by_digest(self, digest: str, limit: int = 100) -> list[Entry]:
        """Every registration of this digest, earliest first (several submitters may register one artefact)."""
        rows = self._rows(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE digest = ? ORDER BY idx LIMIT ?", (digest, limit)
        )
        return [self._entry(row) for row in rows]

    def recent_entries(self, limit: int, before: int | None = None) -> list[Entry]:
        if before is None:
            rows = self._rows(f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY idx DESC LIMIT ?", (limit,))
        else:
            query = f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE idx < ? ORDER BY idx DESC LIMIT ?"
            rows = self._rows(query, (before, limit))
        return [self._entry(row) for row in rows]

    def find_registrations(self, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], Entry]:
        """The existing entries for these (kind, digest, submitter key) triples (idempotent submission).

        Looked up by digest (indexed), then matched on kind and key here."""
        wanted = set(keys)
        digests = sorted({digest for _, digest, _ in wanted})
        found: dict[tuple[str, str, str], Entry] = {}
        for start in range(0, len(digests), 200):
            chunk = digests[start : start + 200]
            marks = ", ".join(["?"] * len(chunk))
            for row in self._rows(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE digest IN ({marks})", chunk):
                entry = self._entry(row)
                key = (entry.kind, entry.digest, entry.submitter_key)
                if key in wanted:
                    found[key] = entry
        return found

    def checkpoint(self, size: int) -> bytes | None:
        rows = self._rows("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return bytes(rows[0][0]) if rows else None

    def latest_checkpoint(self) -> bytes | None:
        rows = self._rows("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ the one write

    def append_batch(
        self, old_size: int, entries: Sequence[Entry], nodes: Sequence[tuple[NodeId, bytes]], signed: SignedCheckpoint
    ) -> None:
        """Store a batch, its new tree nodes and the checkpoint signed over it, in one transaction.

        Refuses (ConcurrentWriterError) if the committed tree size is not `old_size`: someone else wrote.
        """
        new_size = signed.size
        last_time = max((time_micros(parse_time(e.integrated_time)) for e in entries), default=0)
        with self._transaction() as cursor:
            self._lock_meta(cursor)
            cursor.execute(self._sql("UPDATE meta SET tree_size = ?, last_time_us = ? WHERE id = 1 AND tree_size = ?"),
                           (new_size, last_time, old_size))  # fmt: skip
            if cursor.rowcount != 1:
                raise ConcurrentWriterError(f"{self.url}: the tree is no longer of size {old_size} (another writer?)")
            cursor.executemany(
                self._sql(
                    "INSERT INTO entries (idx, integrated_time, time_us, checkpoint_size, kind, digest, submitter_key, "
                    "signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        e.index,
                        e.integrated_time,
                        time_micros(parse_time(e.integrated_time)),
                        e.checkpoint_size,
                        e.kind,
                        e.digest,
                        e.submitter_key,
                        e.signature,
                    )
                    for e in entries
                ],  # fmt: skip
            )
            cursor.executemany(self._sql("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)"),
                               [(node.level, node.index, digest) for node, digest in nodes])  # fmt: skip
            cursor.execute(self._sql("INSERT INTO checkpoints (size, note) VALUES (?, ?)"), (new_size, signed.note))


def open_storage(url: str) -> Storage:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, or `postgresql://...` (psycopg 3)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStorage

        return SqliteStorage(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStorage

        return PostgresStorage(url)
    raise ModeldeedError(f"--db {url[:80]!r}: expected sqlite:///PATH or postgresql://...")
