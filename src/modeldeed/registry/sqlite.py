"""SQLite backend: one file, nothing to set up; WAL so that readers never wait for the writer.

`synchronous=FULL`: a batch's transaction is on disk before its checkpoint is handed out. A log that
signed a checkpoint and then lost it in a power cut would later sign a different one of the same size,
which to everyone else is equivocation; FULL costs one fsync per batch, not per entry.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .storage import Storage, StorageError


class SqliteStorage(Storage):
    placeholder = "?"
    blob_type = "BLOB"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not str(path):
            raise StorageError("sqlite:///: no database file named")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> Any:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.url}: cannot be opened ({exc})") from None
        return conn

    def _begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
