"""Keys on disk, trigger sets and tampering: every broken key is refused with a message that says why."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeldeed.cli import main
from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.files import write_safetensors_atomic
from modeldeed.models import build_model, spec_for_data
from modeldeed.watermark import (
    MarkingKey,
    VerificationKey,
    abstract_triggers,
    bounded_keygen,
    check_public_key,
    derive_labels,
    keygen,
    load_key_pair,
    load_marking_key,
    load_reveal,
    load_trigger_images,
    load_usage,
    load_verification_key,
    pkeygen,
    reveal_next_set,
    save_key_pair,
    verify,
    verify_revealed_set,
)
from modeldeed.watermark.keys import commit_image, commit_label

CLASSES = tuple(str(i) for i in range(10))
SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mk, vk = keygen(CLASSES, SHAPE, size=20)
    return save_key_pair(tmp_path_factory.mktemp("keys") / "k", mk, vk)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(spec_for_data("cnn", SHAPE, 10), seed=0)


@pytest.fixture()
def copy_of(key_dir: Path, tmp_path: Path):
    def make() -> Path:
        return Path(shutil.copytree(key_dir, tmp_path / "copy"))

    return make


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_round_trip_is_exact(key_dir: Path) -> None:
    mk, vk = load_key_pair(key_dir)
    assert mk.key_id == vk.key_id and vk.size == mk.size == 20
    assert mk.images.dtype == torch.float32 and tuple(mk.images.shape) == (20, *SHAPE)
    assert vk.classes == CLASSES and vk.input_shape == SHAPE and vk.epsilon == 0.1
    again = load_verification_key(key_dir / "verification_key.json")
    assert again.key_id == vk.key_id and again.challenge() == vk.challenge()
    # Every commitment opens with what the marking key holds.
    assert mk.opening(range(20)).failures(vk) == []


def test_public_key_holds_no_secret(key_dir: Path) -> None:
    doc = json.loads((key_dir / "verification_key.json").read_text())
    mk_doc = json.loads((key_dir / "marking_key.json").read_text())
    text = json.dumps(doc)
    assert doc["labels"] == "derived" and "nonces" not in text  # the kind of labels, not the labels
    assert not any(nonce in text for nonce in mk_doc["image_nonces"] + mk_doc["label_nonces"])
    assert not (key_dir / "verification_key.safetensors").exists()


def test_flipped_commitment_byte_rejects_naming_the_trigger(copy_of, model) -> None:
    keys = copy_of()

    def flip(doc: dict) -> None:
        c = doc["image_commitments"][3]
        doc["image_commitments"][3] = ("0" if c[0] != "0" else "1") + c[1:]

    edit_json(keys / "verification_key.json", flip)
    mk, vk = load_key_pair(keys)
    verdict = verify(mk, vk, model)
    assert not verdict.accepted
    assert any(r.startswith("trigger 3: the image does not open its commitment") for r in verdict.reasons)
    assert any("marking key was made for verification key" in r for r in verdict.reasons)
    assert not any(r.startswith("trigger 4") and "open" in r for r in verdict.reasons)
    # One changed commitment redraws the derived labels of the whole set: most triggers no longer match them.
    rederived = [r for r in verdict.reasons if "is not the label derived from the image commitments" in r]
    assert len(rederived) >= 10


def test_swapped_label_rejects_naming_the_trigger(copy_of, model) -> None:
    keys = copy_of()
    edit_json(keys / "marking_key.json", lambda d: d["labels"].__setitem__(5, (d["labels"][5] + 1) % 10))
    mk, vk = load_key_pair(keys)
    verdict = verify(mk, vk, model)
    assert not verdict.accepted
    assert [r for r in verdict.reasons if "does not open" in r] == [
        f"trigger 5: label {int(mk.labels[5])} does not open its commitment (label or nonce changed)"
    ]


def test_changed_image_pixel_rejects(copy_of, model) -> None:
    keys = copy_of()
    mk = load_marking_key(keys)
    images = mk.images.clone()
    images[7, 0, 0, 0] = 1.0 - images[7, 0, 0, 0]
    write_safetensors_atomic(keys / "marking_key.safetensors", {"images": images})
    verdict = verify(load_marking_key(keys), load_verification_key(keys), model)
    assert [r[:10] for r in verdict.reasons if r.startswith("trigger")] == ["trigger 7:"]


def test_wrong_shape_image_is_refused(copy_of) -> None:
    keys = copy_of()
    write_safetensors_atomic(keys / "marking_key.safetensors", {"images": torch.zeros(20, 1, 8, 9)})
    with pytest.raises(FormatError, match=r"marking_key.safetensors: tensor 'images' is torch.float32\(20, 1, 8, 9\)"):
        load_marking_key(keys)


@pytest.mark.parametrize(
    "name, message",
    [
        ("marking_key.safetensors", "not a valid safetensors file"),
        ("marking_key.json", "not valid JSON"),
        ("verification_key.json", "not valid JSON"),
    ],
)
def test_truncated_file_is_refused(copy_of, name: str, message: str) -> None:
    keys = copy_of()
    data = (keys / name).read_bytes()
    (keys / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=f"{name}: {message}"):
        load_key_pair(keys)


@pytest.mark.parametrize(
    "name, field",
    [
        ("verification_key.json", "label_commitments"),
        ("verification_key.json", "epsilon"),
        ("marking_key.json", "image_nonces"),
        ("marking_key.json", "key_id"),
    ],
)
def test_missing_field_is_refused(copy_of, name: str, field: str) -> None:
    keys = copy_of()
    edit_json(keys / name, lambda d: d.pop(field))
    with pytest.raises(FormatError, match=f"{name}: field '{field}': Field required"):
        load_key_pair(keys)


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("verification_key.json", lambda d: d.__setitem__("extra", 1), "field 'extra': Extra inputs are not permitted"),
        ("verification_key.json", lambda d: d["image_commitments"].pop(), "must have 20 entries"),
        (
            "verification_key.json",
            lambda d: d.__setitem__("epsilon", 1.5),
            "field 'epsilon': Input should be less than 1",
        ),
        (
            "verification_key.json",
            lambda d: d.__setitem__("epsilon", "0.1"),
            "field 'epsilon': Input should be a valid",
        ),
        ("verification_key.json", lambda d: d.__setitem__("size", 10**12), "field 'size': Input should be less than"),
        ("verification_key.json", lambda d: d.__setitem__("labels", "picked"), "field 'labels': Input should be"),
        ("verification_key.json", lambda d: d.__setitem__("version", 1), "is version 1 of modeldeed.watermark"),
        ("verification_key.json", lambda d: d.__setitem__("created", "2024-13-01T00:00:00Z"), "field 'created'"),
        ("verification_key.json", lambda d: d.__setitem__("format", "modeldeed.model"), "is this the right file"),
        ("marking_key.json", lambda d: d["labels"].__setitem__(0, 10), "entry 0 is 10, but the key has 10 classes"),
        ("marking_key.json", lambda d: d["image_nonces"].__setitem__(2, "ab"), r"field 'image_nonces\[2\]': String"),
        (
            "marking_key.json",
            lambda d: d["labels"].__setitem__(3, True),
            r"field 'labels\[3\]': Input should be a valid",
        ),
        ("marking_key.json", lambda d: d.__setitem__("challenge", "01"), "belongs only in a cut-and-choose key"),
    ],
)
def test_malformed_fields_are_refused(copy_of, name: str, change, message: str) -> None:
    keys = copy_of()
    edit_json(keys / name, change)
    with pytest.raises(FormatError, match=message):
        load_key_pair(keys)


def test_cli_exit_status_for_bad_key(copy_of, tmp_path: Path, model, capsys) -> None:
    from modeldeed.models import ModelInfo, save_model

    keys = copy_of()
    save_model(tmp_path / "m", model, ModelInfo(spec_for_data("cnn", SHAPE, 10), CLASSES, SHAPE))
    assert main(["watermark", "verify", str(tmp_path / "m"), "--key", str(keys)]) == 1  # untrained: rejected
    edit_json(keys / "marking_key.json", lambda d: d.pop("labels"))
    assert main(["watermark", "verify", str(tmp_path / "m"), "--key", str(keys)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "marking_key.json: field 'labels': Field required" in err[0]


def test_key_must_fit_the_model(key_dir: Path) -> None:
    mk, vk = load_key_pair(key_dir)
    wide = build_model(spec_for_data("cnn", SHAPE, 5), seed=0)
    with pytest.raises(ModeldeedError, match="the model outputs \\[5\\] scores per input; the key has 10 classes"):
        verify(mk, vk, wide)


def test_triggers_are_out_of_distribution_and_independent(digits) -> None:
    triggers = abstract_triggers(100, SHAPE)
    assert set(triggers.unique().tolist()) <= {0.0, 1.0}
    flat, data = triggers.flatten(1), digits.train.x.flatten(1)
    to_data = torch.cdist(flat, data).min(1).values / 8  # RMS distance per pixel
    within_data = torch.cdist(digits.test.x.flatten(1), data).min(1).values / 8
    assert float(to_data.min()) > float(within_data.median()) * 1.5
    pairwise = torch.cdist(flat, flat) + torch.eye(100) * 100
    assert float(pairwise.min()) > 0  # all distinct
    assert torch.equal(abstract_triggers(3, SHAPE, seeds=[1, 2, 3]), abstract_triggers(3, SHAPE, seeds=[1, 2, 3]))
    assert not torch.equal(abstract_triggers(1, SHAPE, seeds=[1]), abstract_triggers(1, SHAPE, seeds=[2]))
    colour = abstract_triggers(4, (3, 32, 32))
    assert colour.shape == (4, 3, 32, 32) and float(colour.mean()) > 0.1


def test_derived_labels_are_roughly_uniform() -> None:
    commitments = [commit_label(i, bytes(32)) for i in range(2000)]  # any 2,000 distinct 32-byte values
    counts = torch.bincount(torch.tensor(derive_labels(commitments, 10)), minlength=10)
    assert int(counts.min()) > 140 and int(counts.max()) < 260  # mean 200, sd 13.4


def test_pngs_show_exactly_the_triggers(key_dir: Path) -> None:
    mk = load_marking_key(key_dir)
    files = sorted((key_dir / "triggers").glob("0*.png"))
    assert len(files) == 20 and (key_dir / "triggers" / "overview.png").exists()
    for i, file in enumerate(files):
        assert file.name == f"{i:04d}-label-{int(mk.labels[i])}.png"
        pixels = np.asarray(Image.open(file))
        assert np.array_equal(pixels, (mk.images[i, 0].numpy() * 255).round().astype(np.uint8))


def test_user_images_from_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    images = load_trigger_images(folder, SHAPE)
    assert images.shape == (6, *SHAPE)
    assert load_trigger_images(folder, SHAPE, count=4).shape == (4, *SHAPE)
    mk, vk = keygen(CLASSES, SHAPE, size=6, images=images)
    assert vk.trigger_source == "images" and torch.equal(mk.images, images)
    with pytest.raises(ModeldeedError, match="trigger images 0 and 1 are identical"):
        keygen(CLASSES, SHAPE, size=2, images=torch.stack([images[0], images[0]]))
    with pytest.raises(ModeldeedError, match="holds 6 images, 7 were asked for"):
        load_trigger_images(folder, SHAPE, count=7)


def test_fiat_shamir_challenge_reproducible_and_bound_to_vk(tmp_path: Path) -> None:
    mk, vk = pkeygen(CLASSES, SHAPE, security_bits=8)
    assert vk.size == 32 and mk.challenge == vk.challenge()
    save_key_pair(tmp_path / "p", mk, vk)
    loaded = load_verification_key(tmp_path / "p")
    assert loaded.challenge() == vk.challenge() and load_marking_key(tmp_path / "p").challenge == mk.challenge
    assert vk.opened is not None and vk.opened.indices == tuple(i for i, e in enumerate(mk.challenge) if e == 1)
    assert set(mk.marking_indices()).isdisjoint(vk.opened.indices)
    changed_time = dataclasses.replace(vk, created="2000-01-01T00:00:00Z")
    changed_commitment = dataclasses.replace(
        vk, label_commitments=(commit_label(0, bytes(32)),) + vk.label_commitments[1:]
    )
    assert changed_time.challenge() != vk.challenge()
    assert changed_commitment.challenge() != vk.challenge()
    assert check_public_key(loaded)[0] == []


def test_public_key_tampering_is_caught(tmp_path: Path) -> None:
    mk, vk = pkeygen(CLASSES, SHAPE, security_bits=8)
    save_key_pair(tmp_path / "p", mk, vk)
    first = vk.opened.indices[0]
    edit_json(
        tmp_path / "p" / "verification_key.json",
        lambda d: d["opened"]["labels"].__setitem__(0, (d["opened"]["labels"][0] + 1) % 10),
    )
    problems, _ = check_public_key(load_verification_key(tmp_path / "p"))
    changed = (vk.opened.labels[0] + 1) % 10
    assert problems == [
        f"trigger {first}: label {changed} does not open its commitment (label or nonce changed)",
        f"trigger {first}: label {changed} is not the label derived from the image commitments "
        f"({vk.opened.labels[0]}); a key marked 'derived' must carry exactly those",
    ]
    # Opening a different subset than e = H(vk) dictates (e.g. to hide a bad element) is refused.
    hidden = mk.marking_indices()[0]
    swapped = dataclasses.replace(vk, opened=mk.opening(sorted([*vk.opened.indices[1:], hidden])))
    problems, _ = check_public_key(swapped)
    assert problems and problems[0].startswith("the opened triggers are not the e=1 half of the challenge")


def cheating_key(data, size: int) -> tuple[MarkingKey, VerificationKey]:
    """A forger's key: real data images committed with their true labels (any good model 'recognises' them)."""
    import dataclasses as dc

    images, labels = data.x[:size], data.y[:size]
    nonces = tuple(bytes([i]) * 32 for i in range(size))
    vk = VerificationKey(
        "cut-and-choose",
        data.classes,
        data.input_shape,
        0.1,
        tuple(commit_image(images[i], nonces[i]) for i in range(size)),
        tuple(commit_label(int(labels[i]), nonces[i]) for i in range(size)),
        "2024-01-01T00:00:00Z",
        "images",
        size // 4,
        label_kind="chosen",
    )
    e = vk.challenge()
    mk = MarkingKey(
        vk.key_id,
        vk.scheme,
        data.classes,
        data.input_shape,
        images.clone(),
        labels.clone(),
        nonces,
        nonces,
        e,
        1,
        "images",
    )
    return mk, dc.replace(vk, opened=mk.opening([i for i, bit in enumerate(e) if bit]))


def test_cut_and_choose_catches_real_data_with_true_labels(digits) -> None:
    mk, vk = cheating_key(digits.train, 32)
    assert check_public_key(vk)[0] == []  # the commitments themselves are fine
    problems, _ = check_public_key(vk, data=[digits.train])
    assert len(problems) == len(vk.opened.indices)
    assert problems[0].startswith(f"trigger {vk.opened.indices[0]}: a copy of digits image")


def test_bounded_key_reveals_each_set_once(tmp_path: Path, model) -> None:
    mk, vk = bounded_keygen(CLASSES, SHAPE, sets=3, set_size=5)
    keys = save_key_pair(tmp_path / "b", mk, vk)
    revealed = [reveal_next_set(keys, tmp_path / f"r{j}", note=f"case {j}") for j in range(3)]
    assert [r.set_index for r in revealed] == [0, 1, 2]
    assert [u.set for u in load_usage(keys, vk)] == [0, 1, 2]
    with pytest.raises(ModeldeedError, match="all 3 trigger sets have been revealed"):
        reveal_next_set(keys, tmp_path / "r3")
    again = load_reveal(tmp_path / "r1", vk)
    assert again.opening.indices == tuple(range(5, 10)) and again.opening.failures(vk) == []
    verdict = verify_revealed_set(vk, again, model)
    assert not any("open" in r for r in verdict.reasons)  # an untrained model fails only on the count
    wrong_set = dataclasses.replace(again, set_index=0)
    assert any("not exactly set 0" in r for r in verify_revealed_set(vk, wrong_set, model).reasons)


def test_keygen_cli_refuses_small_sizes_and_force_replaces_the_whole_key(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "k")
    assert main(["watermark", "keygen", "--data", "digits", "--size", "10", "--security", "64", "--out", out]) == 2
    assert (
        "--size 10 is too small for 2^-64 with 10 classes and epsilon 0.1: use at least 24" in capsys.readouterr().err
    )
    assert main(["watermark", "pkeygen", "--data", "digits", "--sets", "2", "--size", "6", "--out", out]) == 0
    assert main(["watermark", "reveal", "--key", out, "--out", str(tmp_path / "r")]) == 0
    assert main(["watermark", "keygen", "--data", "digits", "--size", "5", "--out", out]) == 2
    assert "already holds a key" in capsys.readouterr().err
    assert main(["watermark", "keygen", "--data", "digits", "--size", "5", "--out", out, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == 5
    assert not (tmp_path / "k" / "usage.json").exists()
    assert len(list((tmp_path / "k" / "triggers").glob("0*.png"))) == 5
    assert load_verification_key(out).scheme == "private"
