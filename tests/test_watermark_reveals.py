"""Bounded public verification: a reveal is an artefact with an id, each set is revealed once, and a set that the
evidence shows public before (an earlier reveal, the owner's record, a model first seen later) does not count."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from modeldeed.cli import main
from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.watermark import (
    RevealRecord,
    bounded_keygen,
    load_reveal,
    load_usage,
    load_verification_key,
    parse_moment,
    reveal_set,
    reveal_timing,
    save_key_pair,
    save_reveal,
)

CLASSES = tuple(str(i) for i in range(10))
SHAPE = (1, 8, 8)


@pytest.fixture()
def bounded(tmp_path: Path):
    mk, vk = bounded_keygen(CLASSES, SHAPE, sets=3, set_size=4)
    return save_key_pair(tmp_path / "keys", mk, vk, pngs=False), vk


def test_reveal_is_an_artefact_with_an_id_recorded_by_the_owner(bounded, tmp_path: Path) -> None:
    keys, vk = bounded
    reveal = reveal_set(keys, tmp_path / "r0", note="for the judge")
    assert reveal.set_index == 0 and reveal.key_id == vk.key_id
    # The id is the SHA-256 of reveal.json as written (canonical JSON), which names the images' digest.
    assert hashlib.sha256((tmp_path / "r0" / "reveal.json").read_bytes()).hexdigest() == reveal.reveal_id
    doc = json.loads((tmp_path / "r0" / "reveal.json").read_text())
    assert doc["images_sha256"] == hashlib.sha256((tmp_path / "r0" / "reveal.safetensors").read_bytes()).hexdigest()
    assert doc["set"] == 0 and doc["created"] == reveal.created and doc["version"] == 2
    [entry] = load_usage(keys, vk)
    assert (entry.set, entry.reveal_id, entry.time, entry.note) == (
        0,
        reveal.reveal_id,
        reveal.created,
        "for the judge",
    )
    again = load_reveal(tmp_path / "r0", vk)
    assert again.reveal_id == reveal.reveal_id and again.opening.failures(vk) == []

    with pytest.raises(ModeldeedError, match="set 0 was revealed at .* does not count again"):
        reveal_set(keys, tmp_path / "r0-again", set_index=0)
    with pytest.raises(ModeldeedError, match="already holds a reveal"):
        reveal_set(keys, tmp_path / "r0")
    assert reveal_set(keys, tmp_path / "r2", set_index=2).set_index == 2
    assert reveal_set(keys, tmp_path / "r1").set_index == 1  # the next unused one
    with pytest.raises(ModeldeedError, match="all 3 trigger sets have been revealed"):
        reveal_set(keys, tmp_path / "r3")


def test_a_changed_reveal_is_refused(bounded, tmp_path: Path) -> None:
    keys, vk = bounded
    reveal_set(keys, tmp_path / "r0")
    changed = Path(shutil.copytree(tmp_path / "r0", tmp_path / "c1"))
    data = bytearray((changed / "reveal.safetensors").read_bytes())
    data[-1] ^= 1
    (changed / "reveal.safetensors").write_bytes(bytes(data))
    with pytest.raises(FormatError, match="reveal.safetensors: does not have the SHA-256 that reveal.json names"):
        load_reveal(changed, vk)
    changed = Path(shutil.copytree(tmp_path / "r0", tmp_path / "c2"))
    doc = json.loads((changed / "reveal.json").read_text())
    doc["indices"] = [0, 1, 2, 100]
    (changed / "reveal.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="field 'indices': 100 is not a trigger of this key"):
        load_reveal(changed, vk)


def at(reveal, created: str):
    return dataclasses.replace(reveal, created=created)


def test_which_reveals_count(bounded, tmp_path: Path) -> None:
    keys, vk = bounded
    first = at(reveal_set(keys, tmp_path / "r0"), "2024-03-01T00:00:00Z")
    second = at(first, "2024-06-01T00:00:00Z")  # the same set opened again later (e.g. usage.json deleted)
    assert second.reveal_id != first.reveal_id
    record = lambda r: RevealRecord(r.set_index, r.created, r.reveal_id, f"reveal {r.reveal_id[:16]}…")  # noqa: E731

    # Nothing else known: it counts, but the verdict says the model's age is unknown.
    problems, notes, metrics = reveal_timing(first, [], None)
    assert problems == [] and metrics["counts"] and "--first-seen" in notes[0]
    # The model was seen before the set was revealed: it counts.
    problems, _, metrics = reveal_timing(first, [], parse_moment("2024-02-01"))
    assert problems == [] and metrics["revealed_at"] == "2024-03-01T00:00:00Z"
    # The model appeared after the reveal (or at the same moment): anyone could have fitted it to the set.
    for seen in ("2024-04-01", "2024-03-01T00:00:00Z"):
        problems, _, metrics = reveal_timing(first, [], parse_moment(seen))
        assert not metrics["counts"] and "not before: anyone could have fitted the model" in problems[0]
    # A later reveal of a set that an earlier reveal had opened does not count, whatever the model's age.
    problems, _, metrics = reveal_timing(second, [record(first)], parse_moment("2024-01-01"))
    assert not metrics["counts"] and problems[0].startswith("set 0 had been revealed before this reveal (2024-03-01")
    assert metrics["revealed_at"] == "2024-03-01T00:00:00Z"
    # The earlier reveal still counts, and says that the set was opened again.
    problems, notes, metrics = reveal_timing(first, [record(second)], parse_moment("2024-01-01"))
    assert problems == [] and "revealed again later" in notes[0]
    # The owner's usage record is evidence too; the record of this very reveal is not "another" reveal.
    [entry] = load_usage(keys, vk)
    owner = RevealRecord(entry.set, entry.time, entry.reveal_id, "the owner's usage record")
    later = at(first, "2100-01-01T00:00:00Z")
    problems, _, _ = reveal_timing(later, [owner], None, now=parse_moment("2100-01-02"))
    assert problems and "the owner's usage record" in problems[0]
    real = load_reveal(tmp_path / "r0", vk)
    assert reveal_timing(real, [owner], None)[0] == []
    # Other sets' reveals say nothing about this one.
    other = RevealRecord(1, "2000-01-01T00:00:00Z", "0" * 64, "reveal of set 1")
    assert reveal_timing(first, [other], parse_moment("2024-02-01"))[0] == []
    with pytest.raises(ModeldeedError, match="has no time zone"):
        parse_moment("2024-02-01T00:00:00")
    # A reveal dated in the future would count for models that appear after the set was public.
    problems, _, _ = reveal_timing(at(first, "2100-01-01T00:00:00Z"), [], parse_moment("2099-01-01"))
    assert problems and "in the future" in problems[0]


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bounded key of 2 sets of 10 and a digits cnn trained with it (FROMSCRATCH)."""
    root = tmp_path_factory.mktemp("bounded")
    keys, model = root / "keys", root / "model"
    assert main(["watermark", "pkeygen", "--data", "digits", "--sets", "2", "--size", "10", "--out", str(keys)]) == 0
    train = ["train", "--data", "digits", "--epochs", "6", "--lr", "0.05", "--batch-size", "32"]
    assert (
        main([*train, "--watermark", str(keys), "--triggers-per-batch", "6", "--out", str(model), "--no-progress"]) == 0
    )
    return keys, model


def run_json(args: list[str], capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_pverify_counts_a_set_once(marked, tmp_path: Path, capsys) -> None:
    keys, model = marked
    keys = Path(shutil.copytree(keys, tmp_path / "keys"))
    r0 = str(tmp_path / "r0")
    assert main(["watermark", "reveal", "--key", str(keys), "--out", r0, "--note", "court"]) == 0
    out = capsys.readouterr().out
    reveal_id = hashlib.sha256((tmp_path / "r0" / "reveal.json").read_bytes()).hexdigest()
    assert f"reveal id (SHA-256 of reveal.json; register it to fix the time): {reveal_id}" in out
    pverify = ["watermark", "pverify", str(model), "--key", str(keys), "--reveal", r0]

    code, verdict = run_json([*pverify, "--first-seen", "2000-01-01"], capsys)
    assert code == 0 and verdict["accepted"] and verdict["metrics"]["counts"], verdict["reasons"]
    assert verdict["metrics"]["reveal_id"] == reveal_id and verdict["triggers"] == 10
    code, verdict = run_json(pverify, capsys)
    assert code == 0 and any("--first-seen" in n for n in verdict["notes"])
    code, verdict = run_json([*pverify, "--first-seen", "2999-01-01T00:00:00Z"], capsys)
    assert code == 1 and not verdict["metrics"]["counts"] and verdict["agreements"] >= 9
    assert any("anyone could have fitted the model to the revealed set" in r for r in verdict["reasons"])

    # The owner tries to open set 0 again: refused. Deleting the record lets it through, but the earlier
    # reveal, held by a verifier, shows that the set had been public before.
    capsys.readouterr()
    assert main(["watermark", "reveal", "--key", str(keys), "--set", "0", "--out", str(tmp_path / "again")]) == 2
    assert "set 0 was revealed at" in capsys.readouterr().err
    (keys / "usage.json").unlink()
    assert main(["watermark", "reveal", "--key", str(keys), "--set", "0", "--out", str(tmp_path / "again")]) == 0
    again = ["watermark", "pverify", str(model), "--key", str(keys), "--reveal", str(tmp_path / "again")]
    code, verdict = run_json([*again, "--first-seen", "2000-01-01"], capsys)
    assert code == 0  # nothing the verifier holds shows the earlier reveal
    # (Made in the same second, the two reveals would be byte for byte the same reveal; date the first earlier.)
    vk = load_verification_key(keys)
    save_reveal(tmp_path / "first", at(load_reveal(r0, vk), "2024-01-01T00:00:00Z"))
    other = ["--other-reveal", str(tmp_path / "first")]
    code, verdict = run_json([*again, *other, "--first-seen", "2000-01-01"], capsys)
    assert code == 1 and any("had been revealed before this reveal (2024-01-01" in r for r in verdict["reasons"])

    capsys.readouterr()
    assert main([*pverify, "--first-seen", "yesterday"]) == 2
    assert "is not a date" in capsys.readouterr().err


def test_saving_a_reveal_again_gives_the_same_bytes(bounded, tmp_path: Path) -> None:
    keys, vk = bounded
    reveal = reveal_set(keys, tmp_path / "r0")
    save_reveal(tmp_path / "copy", reveal)
    assert (tmp_path / "copy" / "reveal.json").read_bytes() == (tmp_path / "r0" / "reveal.json").read_bytes()
