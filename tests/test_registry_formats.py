"""Signed notes, checkpoints, entries, identities and receipts: formats, signatures, tampering."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from registry_helpers import GOLDEN_ORIGIN, build_log, golden_digest, golden_identity, golden_log_key

from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.registry.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from modeldeed.registry.entry import Entry, Submission, parse_time
from modeldeed.registry.identity import load_identity, load_public_identity, save_identity
from modeldeed.registry.logkey import create_log_key, load_signer_key, load_verifier_key, public_path
from modeldeed.registry.note import SIG_COSIGNATURE, Note, NoteError, SignerKey, VerifierKey, key_id
from modeldeed.registry.receipt import Receipt, load_receipt, registration_beacon, save_receipt, verify_receipt
from modeldeed.schema import validate_document


def test_signed_note_example_from_the_spec_parses():
    # c2sp.org/signed-note's own example: the text may contain blank lines; the last one separates signatures.
    note = Note.parse(
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
        "— quasimodo.example/salvatore "
        "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
    )
    assert note.text.endswith("ed è subito sera.\n")
    assert note.signatures[0].name == "quasimodo.example/salvatore"
    assert len(note.signatures[0].signature) == 64


def test_key_strings_round_trip_and_key_id_follows_the_spec():
    signer = golden_log_key()
    verifier = signer.verifier()
    assert verifier.key_id == key_id(GOLDEN_ORIGIN, 0x01, verifier.public_key)
    assert VerifierKey.parse(str(verifier)) == verifier
    assert SignerKey.parse(str(signer)) == signer
    name, hash_hex, data = str(verifier).split("+", 2)
    assert name == GOLDEN_ORIGIN and len(hash_hex) == 8 and base64.b64decode(data)[0] == 0x01
    assert "PRIVATE" not in repr(signer) and signer.seed.hex() not in repr(signer)
    wrong_id = f"{name}+{'0' * 8 if hash_hex != '0' * 8 else '1' * 8}+{data}"
    with pytest.raises(NoteError, match="key ID"):
        VerifierKey.parse(wrong_id)
    for bad in ("", "a+b", "na me+00000000+AAAA", f"{name}+{hash_hex}+not-base64!"):
        with pytest.raises(NoteError):
            VerifierKey.parse(bad)


def test_checkpoint_signatures_verify_and_reject_edits_and_other_keys():
    signer = golden_log_key()
    signed = sign_checkpoint(Checkpoint(GOLDEN_ORIGIN, 5, bytes(range(32))), signer)
    assert open_checkpoint(signed.note, signer.verifier()) == signed.checkpoint
    text = signed.note.decode()
    edited = text.replace("\n5\n", "\n6\n")
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(edited, signer.verifier())
    other = SignerKey.generate(GOLDEN_ORIGIN)
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_checkpoint(signed.note, other.verifier())
    with pytest.raises(NoteError, match="not .*registry.modeldeed.example/golden|for the log"):
        open_checkpoint(sign_checkpoint(Checkpoint("else", 5, bytes(32)), SignerKey.generate("else")).note,
                        signer.verifier())  # fmt: skip
    # an unknown extra signature is ignored (spec); an extension line is refused (this log never signs one)
    extra = Note.parse(signed.note).signatures + (other.sign(signed.checkpoint.body()),)
    assert open_checkpoint(Note(signed.checkpoint.body(), extra).encode(), signer.verifier()).size == 5
    extended = signed.checkpoint.body() + "extension\n"
    with pytest.raises(NoteError, match="extension"):
        open_checkpoint(Note(extended, (signer.sign(extended),)).encode(), signer.verifier())
    for cut in (10, len(text) - 1, len(text) - 40):
        with pytest.raises(NoteError):
            open_checkpoint(text[:cut], signer.verifier())


def test_checkpoint_body_is_strict():
    root = base64.b64encode(bytes(32)).decode()
    for body in (f"o\n05\n{root}\n", f"o\n-1\n{root}\n", f"o\n1\n{root[:-1]}\n", "o\n1\n", f"o\n1\n{root}",
                 f"o p\n1\n{root}\n", f"o\n{2**63}\n{root}\n"):  # fmt: skip
        with pytest.raises(NoteError):
            Checkpoint.parse_body(body)


def test_submissions_are_bound_to_the_submitter():
    identity = golden_identity()
    sub = identity.submission("model", golden_digest(1))
    assert sub.signature_valid()
    assert not sub.model_copy(update={"digest": golden_digest(2)}).signature_valid()
    assert not sub.model_copy(update={"kind": "claim"}).signature_valid()
    other = SignerKey.generate("x").verifier().public_key.hex()
    assert not sub.model_copy(update={"submitter_key": other}).signature_valid()
    with pytest.raises(FormatError, match="kind"):
        validate_document(Submission, {**sub.model_dump(), "kind": "weights"}, "request")


def test_entry_validation():
    entries, _, _ = build_log(1)
    data = entries[0].model_dump()
    for field, value in (("index", 1), ("integrated_time", "2025-01-02T03:04:05Z"), ("checkpoint_size", 0),
                         ("integrated_time", "2025-13-02T03:04:05.000000Z"), ("digest", "AB" * 32)):  # fmt: skip
        with pytest.raises(FormatError):
            validate_document(Entry, {**data, field: value}, "entry")
    assert parse_time("1970-01-01T00:00:00.000001Z").microsecond == 1


def test_receipts_verify_and_every_edit_is_rejected_with_a_reason():
    entries, receipts, _ = build_log(7)
    verifier = golden_log_key().verifier()
    for receipt in receipts:
        verdict = verify_receipt(receipt, verifier)
        assert verdict.valid and verdict.reasons == () and verdict.index == receipt.entry.index
        assert verdict.integrated_time.tzinfo is not None and verdict.checkpoint.size == receipt.entry.checkpoint_size
    receipt = receipts[5]
    data = receipt.model_dump()
    edits = {
        "entry.index": lambda d: d["entry"].update(index=4),
        "entry.integrated_time": lambda d: d["entry"].update(integrated_time="2024-01-02T03:04:05.678901Z"),
        "entry.checkpoint_size": lambda d: d["entry"].update(checkpoint_size=7),
        "entry.kind": lambda d: d["entry"].update(kind="claim"),
        "entry.digest": lambda d: d["entry"].update(digest=golden_digest(99)),
        "entry.signature": lambda d: d["entry"].update(signature="00" * 64),
        "proof.leaf_index": lambda d: d["inclusion_proof"].update(leaf_index=4),
        "proof.tree_size": lambda d: d["inclusion_proof"].update(tree_size=7),
        "proof.hashes[0]": lambda d: d["inclusion_proof"]["hashes"].__setitem__(0, "00" * 32),
        "proof truncated": lambda d: d["inclusion_proof"]["hashes"].pop(),
        "checkpoint root": lambda d: d.update(checkpoint=receipts[4].checkpoint),
    }
    for name, edit in edits.items():
        changed = json.loads(json.dumps(data))
        edit(changed)
        verdict = verify_receipt(validate_document(Receipt, changed, "receipt"), verifier)
        assert not verdict.valid and verdict.reasons, name
    other_key = SignerKey.generate(GOLDEN_ORIGIN)
    _, other_receipts, _ = build_log(6, key=other_key)
    verdict = verify_receipt(other_receipts[5], verifier)
    assert not verdict.valid and "trusted key" in verdict.reasons[0]
    assert verify_receipt(other_receipts[5], other_key.verifier()).valid


def test_beacon_is_one_per_registration_and_changes_with_the_checkpoint():
    _, receipts, _ = build_log(3)
    beacons = {registration_beacon(r) for r in receipts}
    assert len(beacons) == 3 and all(len(b) == 32 for b in beacons)
    _, again, _ = build_log(3)  # the same log key and tree: the same signed checkpoint, the same beacon
    assert [registration_beacon(r) for r in again] == [registration_beacon(r) for r in receipts]


def test_a_receipt_cannot_gain_beacons_by_extra_signature_lines():
    """A signed-note reader ignores signatures by unknown keys; a receipt must not, or a prover could append
    lines of his own until the beacon (and so the PoL challenge derived from it) suited him."""
    _, receipts, _ = build_log(3)
    verifier = golden_log_key().verifier()
    stranger = SignerKey.generate("stranger.example/key")
    note = Note.parse(receipts[2].checkpoint)
    padded = Note(note.text, (*note.signatures, stranger.sign(note.text))).encode().decode()
    grinding = receipts[2].model_copy(update={"checkpoint": padded})
    assert open_checkpoint(padded, verifier).size == receipts[2].entry.checkpoint_size  # the note itself is fine
    verdict = verify_receipt(grinding, verifier)
    assert not verdict.valid and "one signature line" in verdict.reasons[0]
    with pytest.raises(NoteError, match="exactly one signature line"):
        registration_beacon(grinding)


def test_receipt_files_round_trip_and_truncation_is_bad_input(tmp_path):
    _, receipts, _ = build_log(3)
    path = tmp_path / "receipt.json"
    save_receipt(path, receipts[2])
    assert load_receipt(path) == receipts[2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="receipt.json"):
        load_receipt(path)


def test_identity_files(tmp_path):
    identity = golden_identity()
    save_identity(tmp_path / "id", identity)
    assert stat.S_IMODE(os.stat(tmp_path / "id" / "identity.key").st_mode) == 0o600
    assert load_identity(tmp_path / "id") == identity
    assert load_public_identity(tmp_path / "id") == identity.public_key
    with pytest.raises(ModeldeedError, match="--force"):
        save_identity(tmp_path / "id", golden_identity())
    key_file = tmp_path / "id" / "identity.key"
    doc = json.loads(key_file.read_text())
    doc["public_key"] = "00" * 32
    key_file.write_text(json.dumps(doc))
    with pytest.raises(ModeldeedError, match="does not belong"):
        load_identity(tmp_path / "id")


def test_log_key_files(tmp_path):
    signer = create_log_key(tmp_path / "log.key", "example.org/log")
    assert stat.S_IMODE(os.stat(tmp_path / "log.key").st_mode) == 0o600
    assert load_signer_key(tmp_path / "log.key") == signer
    assert load_verifier_key(public_path(tmp_path / "log.key")) == signer.verifier()
    with pytest.raises(ModeldeedError, match="--force"):
        create_log_key(tmp_path / "log.key", "example.org/log")
    witness = create_log_key(tmp_path / "w.key", "witness.example/w1", witness=True)
    assert witness.sig_type == SIG_COSIGNATURE


def test_witness_cosignature_follows_tlog_cosignature():
    signer, witness = golden_log_key(), SignerKey.generate("witness.example/w1", SIG_COSIGNATURE)
    signed = sign_checkpoint(Checkpoint(GOLDEN_ORIGIN, 3, bytes(32)), signer)
    note = Note.parse(signed.note)
    cosigned = Note(note.text, note.signatures + (witness.sign(note.text, timestamp=1679315147),))
    assert int.from_bytes(cosigned.signatures[1].signature[:8], "big") == 1679315147
    assert open_checkpoint(cosigned.encode(), signer.verifier(), (witness.verifier(),)).size == 3
    with pytest.raises(NoteError):
        open_checkpoint(signed.note, signer.verifier(), (witness.verifier(),))  # no cosignature
