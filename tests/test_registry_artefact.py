"""Artefact digests (canonical JSON, directory manifests) and the consistency of several receipts."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from registry_helpers import build_log, golden_log_key

from modeldeed.errors import FormatError
from modeldeed.files import canonical_json
from modeldeed.registry import directory_digest, directory_manifest, file_digest, json_digest, json_file_digest
from modeldeed.registry.audit import receipts_consistent
from modeldeed.registry.merkle import consistency_proof
from modeldeed.registry.note import SignerKey


def test_json_digest_is_of_the_canonical_form(tmp_path):
    (tmp_path / "a.json").write_text('{"b": [1, 2], "a": "é"}')
    (tmp_path / "b.json").write_text('{\n  "a": "\\u00e9",\n  "b": [1,2]\n}\n')
    expected = hashlib.sha256('{"a":"é","b":[1,2]}'.encode()).hexdigest()
    assert json_file_digest(tmp_path / "a.json") == json_file_digest(tmp_path / "b.json") == expected
    assert json_digest({"a": "é", "b": [1, 2]}) == expected
    (tmp_path / "dup.json").write_text('{"a": 1, "a": 2}')
    with pytest.raises(FormatError, match="twice"):
        json_file_digest(tmp_path / "dup.json")


def test_directory_manifest_covers_regular_files_only_and_stays_inside(tmp_path):
    root = tmp_path / "artefact"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "w.bin").write_bytes(b"\x00" * 10)
    (root / "model.json").write_text("{}")
    manifest = directory_manifest(root)
    assert [f["path"] for f in manifest["files"]] == ["model.json", "sub/w.bin"]
    assert manifest["files"][1] == {"path": "sub/w.bin", "size": 10, "sha256": hashlib.sha256(b"\x00" * 10).hexdigest()}
    assert directory_digest(root) == hashlib.sha256(canonical_json(manifest)).hexdigest()
    assert directory_digest(root, ["model.json"]) != directory_digest(root)
    (root / "sub" / "w.bin").write_bytes(b"\x00" * 9 + b"\x01")
    assert directory_digest(root, ["model.json"]) == directory_digest(root, ["model.json"])
    assert file_digest(root / "model.json") == hashlib.sha256(b"{}").hexdigest()
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(FormatError, match="outside"):
        directory_manifest(root)
    os.unlink(root / "link")
    os.mkfifo(root / "fifo")
    with pytest.raises(FormatError, match="named pipe"):
        directory_manifest(root)
    os.unlink(root / "fifo")
    with pytest.raises(FormatError, match="inside"):
        directory_manifest(root, ["../outside"])


def test_receipts_consistent_catches_forks_and_equivocation():
    key = golden_log_key()
    _, receipts, nodes = build_log(6)

    def proofs(first, second):
        return consistency_proof(first, second, lambda ids: [nodes[i] for i in ids])

    verdict = receipts_consistent([receipts[1], receipts[4], receipts[2]], key.verifier(), proofs)
    assert verdict.consistent and verdict.checked == ((2, 3), (3, 5))
    unchecked = receipts_consistent([receipts[1], receipts[4]], key.verifier())
    assert not unchecked.consistent and "not checked" in unchecked.reasons[0]
    # the same key over another history (a fork): same size, other root; and no proof across the fork
    _, forked, _ = build_log(6, key=key, first_digest=100)
    verdict = receipts_consistent([receipts[3], forked[3]], key.verifier(), proofs)
    assert not verdict.consistent and "equivocation" in verdict.reasons[0]
    verdict = receipts_consistent([receipts[1], forked[4]], key.verifier(), proofs)
    assert not verdict.consistent and "rewrote history" in verdict.reasons[0]
    other = receipts_consistent([receipts[1]], SignerKey.generate(key.name).verifier(), proofs)
    assert not other.consistent and "trusted key" in other.reasons[0]
    json.dumps(verdict.reasons)  # plain strings, ready for a judgement file
