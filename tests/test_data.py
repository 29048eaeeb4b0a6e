"""Every loader on tiny generated files in the official layouts, and on malformed ones."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from helpers import cifar_records, write_idx, write_mnist_dir
from PIL import Image

from modeldeed.data import augment, load_dataset, split_dataset
from modeldeed.errors import DataError


def test_digits_is_embedded_and_split_deterministically(digits):
    again = load_dataset("digits")
    assert digits.train.input_shape == (1, 8, 8) and digits.train.num_classes == 10
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.train.fingerprint == again.train.fingerprint
    assert digits.test.fingerprint != digits.train.fingerprint
    assert 0.0 <= float(digits.train.x.min()) and float(digits.train.x.max()) <= 1.0
    assert digits.train.y.dtype == torch.int64


def test_fingerprint_changes_with_one_pixel(digits):
    x = digits.train.x.clone()
    x[100, 0, 3, 4] += 1e-6
    changed = type(digits.train)("digits", x, digits.train.y, digits.train.classes)
    assert changed.fingerprint != digits.train.fingerprint


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_reads_plain_and_gzip(tmp_path, compress):
    write_mnist_dir(tmp_path, n_train=30, n_test=10, compress=compress)
    splits = load_dataset("fashion-mnist", tmp_path)
    assert splits.train.x.shape == (30, 1, 28, 28) and splits.test.x.shape == (10, 1, 28, 28)
    assert splits.train.classes[0] == "T-shirt/top"
    assert load_dataset("mnist", tmp_path).train.classes[0] == "0"


def test_idx_loader_uses_environment_directory(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path)
    monkeypatch.setenv("MODELDEED_DATA", str(tmp_path))
    assert len(load_dataset("mnist").train) == 30


def test_idx_wrong_magic_number(tmp_path):
    write_mnist_dir(tmp_path, compress=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((30, 28, 28)), 0x801)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: wrong magic number 0x00000801, expected 0x00000803"):
        load_dataset("mnist", tmp_path)


def test_idx_truncated(tmp_path):
    write_mnist_dir(tmp_path, compress=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: truncated"):
        load_dataset("mnist", tmp_path)


def test_idx_corrupt_gzip(tmp_path):
    write_mnist_dir(tmp_path, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: cannot be read"):
        load_dataset("mnist", tmp_path)


def test_idx_label_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path, compress=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29), 0x801)
    with pytest.raises(DataError, match=r"label count mismatch: 29 labels for 30 images"):
        load_dataset("mnist", tmp_path)


def test_idx_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[.gz\]: file not found"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match=r"data directory not found"):
        load_dataset("fashion-mnist", tmp_path / "absent")


def write_cifar10(root, n=4):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    labels = []
    for i in range(1, 6):
        raw, y = cifar_records(n, 1, 10, seed=i)
        (d / f"data_batch_{i}.bin").write_bytes(raw)
        labels.append(y)
    raw, _ = cifar_records(n, 1, 10, seed=9)
    (d / "test_batch.bin").write_bytes(raw)
    return d, np.concatenate(labels)


def test_cifar10_binary(tmp_path):
    d, labels = write_cifar10(tmp_path)
    splits = load_dataset("cifar10", tmp_path)
    assert splits.train.x.shape == (20, 3, 32, 32) and splits.test.x.shape == (4, 3, 32, 32)
    assert splits.train.y.tolist() == labels.tolist()
    first = np.frombuffer((d / "data_batch_1.bin").read_bytes()[1:3073], dtype=np.uint8).reshape(3, 32, 32)
    assert torch.equal(splits.train.x[0], torch.from_numpy(first.astype(np.float32)) / 255)
    assert splits.train.classes[0] == "airplane"


def test_cifar10_truncated(tmp_path):
    d, _ = write_cifar10(tmp_path)
    raw = (d / "test_batch.bin").read_bytes()
    (d / "test_batch.bin").write_bytes(raw[:-7])
    with pytest.raises(DataError, match=r"test_batch.bin: size .* not a positive multiple of the 3073-byte record"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_needs_a_directory(monkeypatch):
    monkeypatch.delenv("MODELDEED_DATA", raising=False)
    with pytest.raises(DataError, match="pass --data-dir"):
        load_dataset("cifar10")


def test_cifar100_binary_keeps_fine_labels(tmp_path):
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    raw, fine = cifar_records(6, 2, 100, seed=1)
    (d / "train.bin").write_bytes(raw)
    (d / "test.bin").write_bytes(cifar_records(3, 2, 100, seed=2)[0])
    (d / "fine_label_names.txt").write_text("\n".join(f"class{i}" for i in range(100)))
    splits = load_dataset("cifar100", tmp_path)
    assert splits.train.y.tolist() == fine.tolist() and splits.train.classes[5] == "class5"


def test_cifar100_wrong_class_names(tmp_path):
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    for split in ("train", "test"):
        (d / f"{split}.bin").write_bytes(cifar_records(2, 2, 100, seed=1)[0])
    (d / "fine_label_names.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"fine_label_names.txt: expected 100 class names, found 2"):
        load_dataset("cifar100", tmp_path)


def test_stl10_binary_is_transposed_back(tmp_path):
    d = tmp_path / "stl10_binary"
    d.mkdir()
    image = np.arange(3 * 96 * 96, dtype=np.uint32).astype(np.uint8).reshape(3, 96, 96)
    for split in ("train", "test"):
        (d / f"{split}_X.bin").write_bytes(np.ascontiguousarray(image.transpose(0, 2, 1)).tobytes() * 2)
        (d / f"{split}_y.bin").write_bytes(bytes([1, 10]))
    splits = load_dataset("stl10", tmp_path)
    assert splits.train.y.tolist() == [0, 9]
    assert torch.equal(splits.train.x[1], torch.from_numpy(image.astype(np.float32)) / 255)


def test_stl10_label_count_mismatch(tmp_path):
    d = tmp_path / "stl10_binary"
    d.mkdir()
    for split in ("train", "test"):
        (d / f"{split}_X.bin").write_bytes(bytes(3 * 96 * 96 * 2))
        (d / f"{split}_y.bin").write_bytes(bytes([1]))
    with pytest.raises(DataError, match=r"train_y.bin: label count mismatch: 1 labels for 2 images"):
        load_dataset("stl10", tmp_path)


def test_folder_loader(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.train.classes == ("cat", "dog")
    assert splits.train.input_shape == (3, 6, 7) and len(splits.train) + len(splits.test) == 10


def test_folder_wrong_image_size_and_bad_file(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (5, 5)).save(tmp_path / "a" / "0.png")
    Image.new("L", (6, 5)).save(tmp_path / "a" / "1.png")
    with pytest.raises(DataError, match=r"1.png: wrong image size"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "a" / "1.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"1.png: not a readable image"):
        load_dataset(f"folder:{tmp_path}")


def test_npz_loader(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((10, 1, 4, 4), np.uint8), y=np.arange(10) % 3)
    splits = load_dataset(f"npz:{path}")
    assert splits.train.num_classes == 3 and len(splits.train) == 8


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 4, 4), np.uint8)}, "missing array"),
        ({"x": np.zeros((4, 1, 4, 4), np.uint8), "y": np.arange(3)}, "one integer label per image"),
        ({"x": np.full((4, 1, 4, 4), 2.0), "y": np.arange(4)}, r"lie in \[0, 1\]"),
        ({"x": np.zeros((4, 1, 4, 4), np.uint8), "y": np.array(["a"] * 4, dtype=object)}, "has dtype object"),
    ],
)
def test_npz_malformed(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{path}")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_split_is_deterministic(digits):
    a, b = split_dataset(digits.train, 0.25, seed=3)
    c, d = split_dataset(digits.train, 0.25, seed=3)
    assert torch.equal(a.x, c.x) and torch.equal(b.y, d.y)
    assert len(a) + len(b) == len(digits.train)


def test_augmentation_is_seeded_and_shape_preserving(digits):
    x = digits.train.x[:16]
    a, b, c = augment(x, 7, padding=2), augment(x, 7, padding=2), augment(x, 8, padding=2)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment(x, 1, padding=0, flip=False), x)
