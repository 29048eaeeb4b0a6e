"""PostgreSQL backend (psycopg 3), for a log shared by a team: `--db postgresql://user@host/dbname`.

Each thread holds its own connection in autocommit mode; a batch is one explicit transaction that first
locks the log's single `meta` row, so two servers pointed at one database can never interleave appends
(the second finds the tree size changed and refuses).
"""

from __future__ import annotations

from typing import Any

from .storage import Storage, StorageError


class PostgresStorage(Storage):
    placeholder = "%s"
    blob_type = "BYTEA"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    @property
    def url(self) -> str:
        # never echo a password that the URL may carry
        scheme, _, rest = self._url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._url, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"{self.url}: cannot connect ({str(exc).strip()[:200]})") from None

    def _lock_meta(self, cursor: Any) -> None:
        cursor.execute("SELECT tree_size FROM meta WHERE id = 1 FOR UPDATE")
