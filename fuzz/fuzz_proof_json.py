"""Fuzz proof.json: the bounded JSON reader, then the proof's parser and its id (modeldeed.pol.proof)."""

import sys

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes
    from modeldeed.pol.proof import MAX_PROOF_BYTES, parse_proof, proof_id


def test_one(data: bytes) -> None:
    try:
        doc = parse_json_bytes(data, "proof.json", max_bytes=MAX_PROOF_BYTES)
        if isinstance(doc, dict):
            parse_proof(doc, "proof.json")
            proof_id(doc)
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
