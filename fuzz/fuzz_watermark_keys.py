"""Fuzz watermark key files (modeldeed.watermark.keys loaders) beside the real key's tensors.

The fuzzed JSON is written as both verification_key.json and marking_key.json into a copy of a real key
directory (private, cut-and-choose or bounded, by the document's `scheme`), and both loaders read it.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import WORK_DIR, run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.watermark.keys import load_marking_key, load_verification_key

SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-keys-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
DIRS = {}
for name, scheme in (("key", "private"), ("pkey", "cut-and-choose"), ("bkey", "bounded")):
    DIRS[scheme] = SCRATCH / name
    shutil.copytree(WORK_DIR / name, DIRS[scheme])


def scheme_of(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return "private"
    scheme = doc.get("scheme") if isinstance(doc, dict) else None
    return scheme if isinstance(scheme, str) and scheme in DIRS else "private"


def test_one(data: bytes) -> None:
    folder = DIRS[scheme_of(data)]
    (folder / "verification_key.json").write_bytes(data)
    (folder / "marking_key.json").write_bytes(data)
    for load in (load_verification_key, load_marking_key):
        try:
            load(folder)
        except ModeldeedError:
            pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
