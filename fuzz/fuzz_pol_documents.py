"""Fuzz the PoL transport formats: proof commitments, opened proofs (opened.json) and environment records.

Each input is tried as all three (modeldeed.pol.commitment.load_commitment, modeldeed.pol.opened.load_opened,
the Environment model behind proof.json's `environment` and `pol.environment.differences`), so one corpus of
real files (fuzz/make_seeds.py) reaches every validator.
"""

import sys
import tempfile
from pathlib import Path

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes
    from modeldeed.pol.commitment import load_commitment
    from modeldeed.pol.environment import Environment, differences
    from modeldeed.pol.opened import OPENED_FILE, load_opened
    from modeldeed.schema import validate_document

SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-pol-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
FILE = SCRATCH / OPENED_FILE


def test_one(data: bytes) -> None:
    FILE.write_bytes(data)
    try:
        load_commitment(FILE)
    except ModeldeedError:
        pass
    try:
        load_opened(SCRATCH)
    except ModeldeedError:
        pass
    try:
        obj = parse_json_bytes(data, "environment")
        env = validate_document(Environment, obj, "environment")
        differences(env, env)
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
