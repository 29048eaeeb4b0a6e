"""Fuzz zero-knowledge proof files (modeldeed.zk.proof): the bounded JSON reader and the declared ZkProof.

What reaches node (thresholds, seeds, proof strings) is only what this document lets through, so this is the
whole of the proof file's attack surface on the Python side.
"""

import sys

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes
    from modeldeed.schema import validate_document
    from modeldeed.zk.encoding import FIELD_MODULUS
    from modeldeed.zk.proof import MAX_FILE_BYTES, ZkProof


def test_one(data: bytes) -> None:
    try:
        proof = validate_document(ZkProof, parse_json_bytes(data, "proof.json", max_bytes=MAX_FILE_BYTES), "proof.json")
    except ModeldeedError:
        return
    for chunk in proof.chunks:  # what the verifier hands on: bounded, and seeds are field elements
        assert int(chunk.seed) < FIELD_MODULUS and len(chunk.proof) <= 256 << 10


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
