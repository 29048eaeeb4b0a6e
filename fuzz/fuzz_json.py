"""Fuzz the strict JSON reader every document goes through (modeldeed.files.parse_json_bytes)."""

import sys

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes


def test_one(data: bytes) -> None:
    try:
        parse_json_bytes(data, "fuzz.json")
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
