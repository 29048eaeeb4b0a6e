"""Bounded inputs: sizes refused before anything is allocated, every CLI number range-checked, the user's own
images and labels read safely (regular files inside the folder, bounded pixels and counts, announced fitting)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeldeed.cli import main
from modeldeed.errors import DataError, FormatError, ModeldeedError
from modeldeed.models import ModelInfo, build_model, save_model, spec_for_data
from modeldeed.training import TrainConfig, TrainState
from modeldeed.watermark import (
    TriggerMixingHook,
    auto_triggers_per_batch,
    bounded_keygen,
    image_files,
    keygen,
    load_marking_key,
    load_verification_key,
    mark,
    minimum_trigger_set_size,
    pkeygen,
    read_labels_file,
    read_trigger_images,
    save_key_pair,
    security_figures,
)
from modeldeed.watermark import images as images_module
from modeldeed.watermark.mark import choose_triggers_per_batch

CLASSES = tuple(str(i) for i in range(10))
SHAPE = (1, 8, 8)


def test_sizes_are_refused_before_anything_is_allocated() -> None:
    started = time.perf_counter()
    with pytest.raises(
        ModeldeedError, match=r"the number of triggers must lie in \[1, 10,000\], got 1,000,000,000,000"
    ):
        keygen(CLASSES, SHAPE, size=10**12)
    with pytest.raises(ModeldeedError, match=r"100 trigger images of shape \[3, 2048, 2048\] need 4,800 MiB"):
        keygen(CLASSES, (3, 2048, 2048), size=100)
    with pytest.raises(ModeldeedError, match=r"input shape \[3, 4096, 4096\] is out of range"):
        keygen(CLASSES, (3, 4096, 4096), size=1)
    with pytest.raises(ModeldeedError, match="at most 256 MiB are allowed, i.e. 2,427 triggers of this shape"):
        keygen(CLASSES, (3, 96, 96), size=3000)
    with pytest.raises(ModeldeedError, match="security bits must lie in"):
        pkeygen(CLASSES, SHAPE, security_bits=10**9)
    with pytest.raises(ModeldeedError, match="the size of a trigger set must lie in"):
        bounded_keygen(CLASSES, SHAPE, sets=100, set_size=101)
    with pytest.raises(ModeldeedError, match="epsilon must be a finite number"):
        keygen(CLASSES, SHAPE, size=4, epsilon=float("nan"))
    with pytest.raises(ModeldeedError, match="the number of classes must lie in"):
        keygen(("only",), SHAPE, size=4)
    with pytest.raises(ModeldeedError, match="the seed must lie in"):
        keygen(CLASSES, SHAPE, size=4, seed=-1)
    with pytest.raises(ModeldeedError, match="label 2 is 10; labels are class indices"):
        keygen(CLASSES, SHAPE, size=3, labels=[0, 1, 10])
    with pytest.raises(ModeldeedError, match="may need more than 10,000 triggers"):
        minimum_trigger_set_size(64, 2, 0.49)
    with pytest.raises(ModeldeedError, match=r"\|T\| must lie in"):
        security_figures(10**12, 10, 0.1)
    assert time.perf_counter() - started < 2  # no search, no drawing, no allocation


def usage_status(args: list[str]) -> int:
    """The exit status of a command refused while its arguments are parsed (argparse exits; a parser that
    reports usage errors itself returns the status)."""
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["watermark", "keygen", "--data", "digits", "--size", "1000000000000"], "--size: must lie in [1, 10,000]"),
        (["watermark", "keygen", "--data", "digits", "--size", "-5"], "--size: must lie in"),
        (["watermark", "keygen", "--data", "digits", "--epsilon", "nan"], "--epsilon: must be a finite number"),
        (["watermark", "keygen", "--data", "digits", "--epsilon", "inf"], "--epsilon: must be a finite number"),
        (["watermark", "keygen", "--data", "digits", "--epsilon", "-0.1"], "--epsilon: must be a finite number"),
        (["watermark", "keygen", "--data", "digits", "--security", "0"], "--security: must lie in"),
        (["watermark", "keygen", "--data", "digits", "--seed", "-3"], "--seed: must lie in"),
        (["watermark", "pkeygen", "--data", "digits", "--sets", "1"], "--sets: must lie in [2,"),
        (["watermark", "pkeygen", "--data", "digits", "--security", "2501"], "--security: must lie in [1, 2,500]"),
        (["watermark", "security", "--classes", "10", "--size", "1e12"], "--size: must be an integer"),
        (["watermark", "security", "--classes", "1"], "--classes: must lie in [2,"),
        (["watermark", "security", "--classes", "10", "--bits", "100000"], "--bits: must lie in [1, 1,024]"),
        (["watermark", "reveal", "--key", "k", "--set", "-1"], "--set: must lie in"),
    ],
)
def test_cli_numbers_are_range_checked(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert usage_status([*args, "--out", str(tmp_path / "k")] if "--data" in args else args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_cli_refuses_more_triggers_than_a_key_holds(tmp_path: Path, capsys) -> None:
    args = ["watermark", "pkeygen", "--data", "digits", "--sets", "200", "--size", "100", "--out", str(tmp_path / "k")]
    assert main(args) == 2
    assert "--sets 200 × --size 100 = 20,000 triggers; a key holds at most 10,000" in capsys.readouterr().err
    assert main(["watermark", "security", "--classes", "2", "--epsilon", "0.49"]) == 2
    assert "may need more than 10,000 triggers" in capsys.readouterr().err


def test_hostile_key_asking_for_huge_images_is_refused_before_reading(tmp_path: Path) -> None:
    keys = save_key_pair(tmp_path / "k", *keygen(CLASSES, SHAPE, size=12), pngs=False)
    doc = json.loads((keys / "marking_key.json").read_text())
    doc["input_shape"] = [3, 2048, 2048]
    (keys / "marking_key.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="marking_key.safetensors: 12 trigger images of shape .* need 576 MiB"):
        load_marking_key(keys)


@pytest.mark.parametrize(
    "format_value, version", [([[[]]], True), ({"a": 1}, 1), ("modeldeed.watermark.verification-key", True)]
)
def test_key_header_of_the_wrong_types_is_bad_input_not_a_crash(tmp_path: Path, format_value, version) -> None:
    """Found by fuzz_watermark_keys: a list as `format` crashed the old-version lookup; `true` passed as 1."""
    keys = save_key_pair(tmp_path / "k", *keygen(CLASSES, SHAPE, size=12), pngs=False)
    for name, loader in (("verification_key.json", load_verification_key), ("marking_key.json", load_marking_key)):
        doc = json.loads((keys / name).read_text())
        original = dict(doc)
        doc.update(format=format_value, version=version)
        (keys / name).write_text(json.dumps(doc))
        with pytest.raises(FormatError, match=name.replace(".", r"\.")):
            loader(keys)
        (keys / name).write_text(json.dumps(original))


def write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ("1.png", "2.png", "10.png"):
        write_png(root / name, rng.integers(0, 256, (8, 8), dtype=np.uint8))
    (root / "labels.txt").write_text("not an image")
    (root / "sub.png").mkdir()  # a directory named like an image is skipped
    return root


def test_images_in_file_name_order_and_both_fits(folder: Path) -> None:
    assert image_files(folder) == ["1.png", "10.png", "2.png"]  # sorted as strings, as Adi et al.'s loader does
    band = np.zeros((8, 16), np.uint8)
    band[:, 4:12] = 255  # a white band in the middle of a wide image
    write_png(folder / "3.png", band)
    crop = read_trigger_images(folder, SHAPE, fit="center-crop", names=["3.png"])
    assert torch.equal(crop.images[0], torch.ones(SHAPE))  # the centre 8×8 is all band
    resized = read_trigger_images(folder, SHAPE, fit="resize", names=["3.png"])
    assert float(resized.images[0, 0, :, 0].max()) < 0.2 and float(resized.images[0, 0, :, 4].min()) > 0.8
    everything = read_trigger_images(folder, SHAPE)
    assert everything.names == ("1.png", "10.png", "2.png", "3.png") and everything.refitted == 1
    assert "4 images from" in everything.describe(folder) and "1 of them scaled to fit" in everything.describe(folder)
    with pytest.raises(DataError, match="need 1 or 3 channels"):
        read_trigger_images(folder, (2, 8, 8))


def test_hostile_folders_are_refused(folder: Path, tmp_path: Path, monkeypatch) -> None:
    outside = write_png(tmp_path / "outside.png", np.zeros((8, 8), np.uint8))
    os.symlink(outside, folder / "0-link.png")
    with pytest.raises(ModeldeedError, match="0-link.png: is outside"):
        read_trigger_images(folder, SHAPE)
    (folder / "0-link.png").unlink()
    os.mkfifo(folder / "0-pipe.png")
    with pytest.raises(ModeldeedError, match="0-pipe.png: is not a regular file \\(a named pipe\\)"):
        read_trigger_images(folder, SHAPE)
    (folder / "0-pipe.png").unlink()
    Image.new("1", (5000, 4000)).save(folder / "0-bomb.png")  # 20 million pixels in a small file
    assert (folder / "0-bomb.png").stat().st_size < 100_000
    with pytest.raises(DataError, match="0-bomb.png: (is 5000×4000 pixels|declares) more than"):
        read_trigger_images(folder, SHAPE)
    (folder / "0-bomb.png").unlink()
    (folder / "0-eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with pytest.raises(DataError, match="0-eps.png: not a readable image"):
        read_trigger_images(folder, SHAPE)
    (folder / "0-eps.png").unlink()
    monkeypatch.setattr(images_module, "MAX_TRIGGERS", 2)
    with pytest.raises(DataError, match="holds more than 2 images"):
        image_files(folder)
    monkeypatch.setattr(images_module, "MAX_DIRECTORY_ENTRIES", 3)
    with pytest.raises(DataError, match="holds more than 3 entries"):
        image_files(folder)


def test_labels_files(folder: Path, tmp_path: Path) -> None:
    names = image_files(folder)  # 1.png, 10.png, 2.png
    labels = tmp_path / "labels.txt"
    labels.write_text("# Adi et al.'s form: one label per line, in file-name order\n3\n7\n\n0\n")
    assert read_labels_file(labels, names, CLASSES) == [3, 7, 0]
    labels.write_text("2.png 4\n1.png,9\n10.png 5\n")
    assert read_labels_file(labels, names, CLASSES) == [9, 5, 4]
    cats = ("cat", "dog", "bird")
    labels.write_text("bird\ncat\ndog\n")
    assert read_labels_file(labels, names, cats) == [2, 0, 1]
    for text, message in (
        ("1\n2\n", "has 2 labels for 3 images"),
        ("1\n2\n10\n", "line 3: '10' is neither a class index below 10 nor a class name"),
        ("1.png 1\n2.png 2\n", "no label for '10.png'"),
        ("1.png 1\n2.png 2\n10.png 3\n4.png 4\n", "labels '4.png', which is not an image here"),
        ("1.png 1\n1.png 2\n", "image '1.png' is labelled twice"),
        ("1\n2.png 2\n3\n", "mixes lines with and without image names"),
        ("a b c\n", "expected LABEL or NAME LABEL"),
        ("", "holds no labels"),
    ):
        labels.write_text(text)
        with pytest.raises(FormatError, match=message):
            read_labels_file(labels, names, CLASSES)
    labels.write_bytes(b"\xff\xfe3\n")
    with pytest.raises(FormatError, match="is not UTF-8 text"):
        read_labels_file(labels, names, CLASSES)


def test_keygen_with_own_images_and_labels(folder: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "labels.txt").write_text("1\n2\n3\n")
    out = tmp_path / "k"
    args = ["watermark", "keygen", "--data", "digits", "--images", str(folder), "--out", str(out)]
    assert main([*args, "--labels", str(tmp_path / "labels.txt"), "--fit", "center-crop"]) == 0
    text = capsys.readouterr().out
    assert "trigger images: 3 images from" in text and "(--fit center-crop)" in text and "labels: chosen" in text
    mk = load_marking_key(out)
    assert mk.labels.tolist() == [1, 2, 3] and mk.trigger_source == "images"
    assert main([*args, "--force", "--size", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["labels"] == "derived" and doc["triggers"] == 2
    assert any(n == "picked 2 of the 3 images at random" for n in doc["notes"])
    assert main([*args, "--force", "--size", "4"]) == 2
    assert "holds 3 images, the key needs 4" in capsys.readouterr().err
    assert (
        main(["watermark", "keygen", "--data", "digits", "--labels", str(tmp_path / "labels.txt"), "--out", "x"]) == 2
    )
    assert "pass --images DIR too" in capsys.readouterr().err


@pytest.fixture()
def marking(tmp_path: Path, digits) -> tuple[Path, Path]:
    keys = save_key_pair(tmp_path / "k", *keygen(digits.train.classes, SHAPE, size=10), pngs=False)
    spec = spec_for_data("cnn", SHAPE, 10)
    save_model(tmp_path / "m", build_model(spec, seed=0), ModelInfo(spec, digits.train.classes, SHAPE))
    return keys, tmp_path / "m"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--triggers-per-batch", "0"], "triggers per batch must lie in [1, 16] (the batch size), got 0"),
        (["--triggers-per-batch", "17"], "triggers per batch must lie in [1, 16] (the batch size), got 17"),
        (["--epochs", "0"], "marking needs at least 1 epoch (got 0)"),
    ],
)
def test_marking_refuses_k_beyond_the_batch_and_zero_epochs(marking, tmp_path: Path, extra, message, capsys) -> None:
    keys, model = marking
    common = ["--data", "digits", "--batch-size", "16", "--no-progress", *extra]
    out = tmp_path / "out"
    assert main(["watermark", "embed", str(model), "--key", str(keys), "--out", str(out), *common]) == 2
    assert message in capsys.readouterr().err
    assert main(["train", "--watermark", str(keys), "--out", str(out), *common]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_library_keeps_k_within_the_batch(digits) -> None:
    assert auto_triggers_per_batch(100, 23) == 261 and auto_triggers_per_batch(100, 23, batch_size=64) == 64
    mk, _ = keygen(digits.train.classes, SHAPE, size=10)
    model = build_model(spec_for_data("cnn", SHAPE, 10), seed=0)
    with pytest.raises(ModeldeedError, match=r"triggers per batch must lie in \[1, 16\] \(the batch size\), got 17"):
        mark(model, mk, digits.train, TrainConfig(epochs=1, batch_size=16), k=17)
    with pytest.raises(ModeldeedError, match="marking needs at least 1 epoch"):
        mark(model, mk, digits.train, TrainConfig(epochs=0), k=2)
    # The hook itself refuses too, for callers that train with it directly.
    hook = TriggerMixingHook.from_key(mk, k=17)
    state = TrainState(
        model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(batch_size=16), digits.train, 0, 1
    )
    with pytest.raises(ModeldeedError, match="17 triggers per batch exceed the batch size 16"):
        hook.on_train_start(state)
    # The automatic k is capped at the batch size, and says so.
    config = TrainConfig(epochs=1, batch_size=16)
    assert choose_triggers_per_batch(None, 100, config, len(digits.train)) == (
        16,
        "showing each trigger about 60 times would take 67 triggers per batch; using the batch size, 16 "
        "(more epochs would show them more often)",
    )
    assert choose_triggers_per_batch(None, 10, TrainConfig(epochs=20), len(digits.train))[1] is None


STRANGE_VALUES = (None, True, -1, 0, 2**70, 1e308, 0.5, "x", "", "0" * 64, [], {}, [None], [2**70], {"a": 1})


def mutations(doc: dict):
    """Every field (and every field of a nested object or first list element) replaced by each strange value."""
    for key in list(doc):
        for value in STRANGE_VALUES:
            yield {**doc, key: value}
        yield {k: v for k, v in doc.items() if k != key}
        inner = doc[key]
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            inner = inner[0]
        if isinstance(inner, dict):
            for sub in mutations(inner):
                yield {**doc, key: [sub] if isinstance(doc[key], list) else sub}
    yield {**doc, "extra": 1}


@pytest.mark.parametrize("scheme", ["private", "cut-and-choose", "bounded"])
def test_every_field_of_every_watermark_file_is_checked(scheme: str, tmp_path: Path) -> None:
    """Whatever a stranger writes into a key, reveal or usage record: it loads, or a ModeldeedError says why."""
    from modeldeed.watermark import load_reveal, load_usage, load_verification_key, reveal_set

    make = {
        "private": lambda: keygen(CLASSES, SHAPE, size=4),
        "cut-and-choose": lambda: pkeygen(CLASSES, SHAPE, security_bits=2),
        "bounded": lambda: bounded_keygen(CLASSES, SHAPE, sets=2, set_size=2),
    }[scheme]
    keys = save_key_pair(tmp_path / "k", *make(), pngs=False)
    files = ["verification_key.json", "marking_key.json"]
    if scheme == "bounded":
        reveal_set(keys, keys / "r")
        files += ["usage.json", "r/reveal.json"]
    vk = load_verification_key(keys)
    loaders = {
        "verification_key.json": lambda: load_verification_key(keys),
        "marking_key.json": lambda: load_marking_key(keys),
        "usage.json": lambda: load_usage(keys, vk),
        "r/reveal.json": lambda: load_reveal(keys / "r", vk),
    }
    tried = 0
    for name in files:
        original = (keys / name).read_text()
        for changed in mutations(json.loads(original)):
            (keys / name).write_text(json.dumps(changed))
            try:
                loaders[name]()
            except ModeldeedError:
                pass
            tried += 1
        (keys / name).write_text(original)
        loaders[name]()
    assert tried > 400
