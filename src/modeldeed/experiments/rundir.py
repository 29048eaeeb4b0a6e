"""Run directories that hold one complete run or nothing: built aside, renamed into place when done.

A demo run's keys, model, proof and report belong together: a report is evidence only while the keys beside it
verify the model beside it. So a run never writes into a directory that holds another run (unless told to
replace it, `force`), and it is built in a hidden sibling directory that is renamed to its name only once
complete; an interrupted or failed run leaves the earlier one untouched and no half-written directory.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from pathlib import Path

from ..errors import ModeldeedError

log = logging.getLogger(__name__)


def default_run_directory(parent: str | Path = "demo", now: float | None = None) -> Path:
    """A fresh directory under `parent` named by the UTC time, e.g. demo/run-20250301-142233 (-2, -3 if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    parent = Path(parent)
    candidate = parent / f"run-{stamp}"
    n = 2
    while candidate.exists():
        candidate = parent / f"run-{stamp}-{n}"
        n += 1
    return candidate


class RunDirectory:
    """`work` is where the run writes; `commit()` moves it to `final`, `abandon()` removes it."""

    def __init__(self, final: str | Path, *, force: bool = False) -> None:
        self.final = Path(final)
        if self.final.exists() and not self.final.is_dir():
            raise ModeldeedError(f"{self.final}: exists and is not a directory")
        if self.final.is_dir() and any(self.final.iterdir()) and not force:
            raise ModeldeedError(
                f"{self.final}: already holds files (an earlier run's keys, model and report belong together); "
                "choose another directory, or pass --force to replace it"
            )
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.work = self._sibling("partial")
        self.work.mkdir()  # with the user's umask (mkdtemp would make it private)

    def commit(self) -> Path:
        """Put the finished run in place; an earlier run there (only with force) is removed after the swap."""
        old = None
        if self.final.exists():
            old = self._sibling("old")
            self.final.rename(old)
        self.work.rename(self.final)
        if old is not None:
            shutil.rmtree(old)
            log.info("replaced the earlier run in %s", self.final)
        return self.final

    def _sibling(self, kind: str) -> Path:
        return self.final.parent / f".{self.final.name}.{kind}-{secrets.token_hex(6)}"

    def abandon(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
