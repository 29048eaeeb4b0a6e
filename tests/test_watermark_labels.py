"""Labels nobody picks: derived labels (golden vectors, whole-set rerolls), the forger with chosen labels,
demonstration keys from a seed, and the reference-model test in private Verify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeldeed.cli import main
from modeldeed.models import ModelInfo, build_model, load_model, save_model, spec_for_data
from modeldeed.training import TrainConfig, predict, train
from modeldeed.watermark import (
    abstract_triggers,
    bounded_keygen,
    derive_labels,
    derive_set_labels,
    keygen,
    load_key_pair,
    load_trigger_images,
    pkeygen,
    save_key_pair,
    set_digest,
    verify,
)
from modeldeed.watermark.verify import CHOSEN_LABELS_NOTE, NOT_BOUND_NOTE

CLASSES = tuple(str(i) for i in range(10))
SHAPE = (1, 8, 8)
GOLDEN = [hashlib.sha256(bytes([i])).hexdigest() for i in range(8)]  # c_i = SHA-256 of the byte i


def spec_labels(set_index: int, commitments: list[str], classes: int) -> list[int]:
    """The derivation as docs/formats.md writes it, with nothing but hashlib."""
    raw = b"".join(bytes.fromhex(c) for c in commitments)
    s = hashlib.sha256(
        b"modeldeed/trigger-set/v1\x00" + set_index.to_bytes(8, "big") + len(commitments).to_bytes(8, "big") + raw
    ).digest()
    return [
        int.from_bytes(
            hashlib.sha256(
                b"modeldeed/derived-label/v1\x00" + classes.to_bytes(8, "big") + i.to_bytes(8, "big") + s
            ).digest(),
            "big",
        )
        % classes
        for i in range(len(commitments))
    ]


def test_golden_vectors_of_derived_labels() -> None:
    assert set_digest(0, GOLDEN).hex() == "20f7a2228e6f197346f93e6f61d1f2acf9ded305c914f9b7b5ec9620d4025d23"
    assert derive_set_labels(0, GOLDEN, 10) == [5, 2, 5, 4, 6, 7, 0, 5]
    assert derive_set_labels(1, GOLDEN, 10) == [7, 3, 7, 7, 1, 9, 1, 3]
    assert derive_set_labels(0, GOLDEN, 2) == [0, 1, 1, 0, 0, 1, 1, 0]
    for j, classes in ((0, 10), (1, 10), (0, 2), (3, 7)):
        assert derive_set_labels(j, GOLDEN, classes) == spec_labels(j, GOLDEN, classes)
    # A bounded key of two sets of 4: each set on its own, with its own index.
    assert derive_labels(GOLDEN, 10, sets=2) == spec_labels(0, GOLDEN[:4], 10) + spec_labels(1, GOLDEN[4:], 10)


def test_one_changed_commitment_redraws_every_label_of_its_set() -> None:
    commitments = [hashlib.sha256(i.to_bytes(4, "big")).hexdigest() for i in range(200)]
    before = derive_labels(commitments, 10)
    changed = [*commitments[:-1], hashlib.sha256(b"another nonce").hexdigest()]
    after = derive_labels(changed, 10)
    # Each label is redrawn independently: about 90 % differ (P[fewer than 150 of 199] < 1e-6).
    assert sum(a != b for a, b in zip(before[:-1], after[:-1])) >= 150
    # In a bounded key the other sets keep theirs.
    bounded_before, bounded_after = derive_labels(commitments, 10, sets=2), derive_labels(changed, 10, sets=2)
    assert bounded_before[:100] == bounded_after[:100] and bounded_before[100:] != bounded_after[100:]


def test_every_scheme_carries_the_derived_labels() -> None:
    mk, vk = keygen(CLASSES, SHAPE, size=12)
    assert vk.label_kind == "derived" and mk.labels.tolist() == derive_labels(vk.image_commitments, 10)
    bmk, bvk = bounded_keygen(CLASSES, SHAPE, sets=3, set_size=4)
    for j in range(3):
        part = list(bvk.image_commitments[4 * j : 4 * j + 4])
        assert bmk.labels[4 * j : 4 * j + 4].tolist() == derive_set_labels(j, part, 10)
    pmk, pvk = pkeygen(CLASSES, SHAPE, security_bits=4)
    hidden = pmk.marking_indices()
    # The public key alone gives the hidden half's labels (not its images): see docs/watermark.md.
    assert [pvk.derived_labels()[i] for i in hidden] == pmk.labels[hidden].tolist()


def test_seeded_keys_are_reproducible_demonstration_keys(tmp_path: Path) -> None:
    a = save_key_pair(tmp_path / "a", *pkeygen(CLASSES, SHAPE, security_bits=4, seed=7), pngs=False)
    b = save_key_pair(tmp_path / "b", *pkeygen(CLASSES, SHAPE, security_bits=4, seed=7), pngs=False)
    for name in (
        "verification_key.json",
        "verification_key.safetensors",
        "marking_key.json",
        "marking_key.safetensors",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    mk, vk = load_key_pair(a)
    assert vk.demonstration_seed == 7 and vk.created == "1970-01-01T00:00:00Z"
    _, other = pkeygen(CLASSES, SHAPE, security_bits=4, seed=8)
    assert other.key_id != vk.key_id
    model = build_model(spec_for_data("cnn", SHAPE, 10), seed=0)
    verdict = verify(mk, vk, model).to_json()
    assert verdict["demonstration"] is True
    assert verdict["notes"][0].startswith("demonstration key: its secrets follow from a public seed (7)")
    _, honest = keygen(CLASSES, SHAPE, size=4)
    assert honest.demonstration_seed is None and "demonstration_seed" not in honest.to_json()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    """A model that never saw any trigger set: 4 epochs of the digits cnn (about 98 % test accuracy)."""
    out = tmp_path_factory.mktemp("clean") / "model"
    spec = spec_for_data("cnn", digits.train.input_shape, 10)
    model = build_model(spec, seed=0)
    train(model, digits.train, TrainConfig(epochs=4, lr=0.05, batch_size=32))
    save_model(out, model, ModelInfo(spec, digits.train.classes, digits.train.input_shape))
    return out


def run_json(args: list[str], capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_forger_with_chosen_labels_is_accepted_but_marked_and_fails_with_derived_labels(
    clean: Path, tmp_path: Path, capsys
) -> None:
    """The attack of issue 10: images made after seeing the model, labels set to its predictions."""
    folder = tmp_path / "forged"
    folder.mkdir()
    for i, image in enumerate(abstract_triggers(100, SHAPE, seeds=list(range(100)))):
        Image.fromarray((image[0].numpy() * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    model = load_model(clean)[0]
    predictions = predict(model, load_trigger_images(folder, SHAPE))  # the images exactly as the key holds them
    (tmp_path / "labels.txt").write_text("".join(f"{int(p)}\n" for p in predictions))
    chosen, derived = str(tmp_path / "chosen"), str(tmp_path / "derived")
    keygen_args = ["watermark", "keygen", "--data", "digits", "--images", str(folder)]
    assert main([*keygen_args, "--labels", str(tmp_path / "labels.txt"), "--out", chosen]) == 0
    assert "labels: chosen" in capsys.readouterr().out

    code, verdict = run_json(["watermark", "verify", str(clean), "--key", chosen], capsys)
    assert code == 0 and verdict["accepted"] and verdict["agreements"] == 100  # accepted on the numbers ...
    assert verdict["labels"] == "chosen"  # ... but the verdict says how little that is worth
    assert CHOSEN_LABELS_NOTE in verdict["notes"] and NOT_BOUND_NOTE in verdict["notes"]
    assert "picked with hindsight" in CHOSEN_LABELS_NOTE and "not bound in time" in NOT_BOUND_NOTE
    capsys.readouterr()
    assert main(["watermark", "verify", str(clean), "--key", chosen]) == 0
    assert "note: the labels were chosen by the key's maker" in capsys.readouterr().out

    # The same forger, same images, but the labels follow from the commitments: about 1 in 10 agree.
    assert main([*keygen_args, "--out", derived]) == 0
    code, verdict = run_json(["watermark", "verify", str(clean), "--key", derived], capsys)
    assert code == 1 and not verdict["accepted"] and verdict["labels"] == "derived"
    assert verdict["agreements"] < 40 and CHOSEN_LABELS_NOTE not in verdict["notes"]

    # Writing the predictions into the derived key's marking key does not help: Verify re-derives them.
    path = Path(derived) / "marking_key.json"
    doc = json.loads(path.read_text())
    doc["labels"] = [int(p) for p in predictions]
    path.write_text(json.dumps(doc))
    code, verdict = run_json(["watermark", "verify", str(clean), "--key", derived], capsys)
    assert code == 1 and any("is not the label derived from the image commitments" in r for r in verdict["reasons"])

    # Nor does relabelling the public key as "chosen" without making a new key: its id changes.
    vk_path = Path(derived) / "verification_key.json"
    vk_doc = json.loads(vk_path.read_text())
    vk_doc["labels"] = "chosen"
    vk_path.write_text(json.dumps(vk_doc))
    code, verdict = run_json(["watermark", "verify", str(clean), "--key", derived], capsys)
    assert code == 1 and any("marking key was made for verification key" in r for r in verdict["reasons"])


def test_private_verify_takes_the_reference_model(clean: Path, digits, tmp_path: Path, capsys) -> None:
    """Real digits with their true classes as 'triggers': the reference model exposes them in private Verify too."""
    images, labels = digits.test.x[:40], digits.test.y[:40].tolist()
    save_key_pair(tmp_path / "k", *keygen(digits.train.classes, SHAPE, size=40, images=images, labels=labels))
    code, verdict = run_json(
        ["watermark", "verify", str(clean), "--key", str(tmp_path / "k"), "--reference", str(clean)], capsys
    )
    assert code == 1 and verdict["metrics"]["reference_agreements"] >= 30
    assert any("look like correctly labelled data" in r for r in verdict["reasons"])
    # An honest key passes the same test: its labels are independent of the images.
    save_key_pair(tmp_path / "h", *keygen(digits.train.classes, SHAPE, size=40))
    code, verdict = run_json(
        ["watermark", "verify", str(clean), "--key", str(tmp_path / "h"), "--reference", str(clean)], capsys
    )
    assert not any("correctly labelled" in r for r in verdict["reasons"])
    assert verdict["metrics"]["reference_agreements"] < 20
