"""Fuzz training statements and seed openings (modeldeed.pol.statement.load_statement / load_opening)."""

import sys
import tempfile
from pathlib import Path

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.pol.statement import load_opening, load_statement

SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-statement-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
FILE = SCRATCH / "statement.json"


def test_one(data: bytes) -> None:
    FILE.write_bytes(data)
    for load in (load_statement, load_opening):
        try:
            load(FILE)
        except ModeldeedError:
            pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
