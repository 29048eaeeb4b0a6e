"""docs/formats.md's registry examples are what the code produces, byte for byte, and they verify."""

from __future__ import annotations

import json
import re
from pathlib import Path

from registry_helpers import golden_log_key, golden_vectors

from modeldeed.registry import merkle, registration_beacon, verify_receipt
from modeldeed.registry.checkpoint import open_checkpoint
from modeldeed.registry.note import VerifierKey
from modeldeed.registry.receipt import Receipt

FORMATS = Path(__file__).parent.parent / "docs" / "formats.md"
BLOCK = re.compile(r"<!-- golden: ([a-z-]+) -->\n```\n(.*?)```", re.S)


def documented() -> dict[str, str]:
    return dict(BLOCK.findall(FORMATS.read_text(encoding="utf-8")))


def test_documented_vectors_are_the_code_s_output():
    blocks, vectors = documented(), golden_vectors()
    assert set(blocks) == set(vectors)
    for name, text in vectors.items():
        assert blocks[name] == text, name


def test_documented_vectors_verify_on_their_own():
    blocks = documented()
    key = VerifierKey.parse(blocks["log-verifier-key"])
    assert key == golden_log_key().verifier()
    checkpoint = open_checkpoint(blocks["checkpoint"], key)
    assert checkpoint.size == 3
    receipt = Receipt.model_validate(json.loads(blocks["receipt"]))
    verdict = verify_receipt(receipt, key)
    assert verdict.valid and verdict.index == 1 and verdict.checkpoint == checkpoint
    assert registration_beacon(receipt).hex() == blocks["beacon"].strip()
    leaf = dict(line.split(": ") for line in blocks["leaf"].splitlines())
    assert (
        merkle.leaf_hash(bytes.fromhex(leaf["leaf data"])).hex() == leaf["leaf hash"] == receipt.entry.leaf_hash().hex()
    )
