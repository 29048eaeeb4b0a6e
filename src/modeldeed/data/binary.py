"""CIFAR-10, CIFAR-100 and STL-10 from their official *binary* distributions (never the pickled ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, file_error
from .dataset import DataSplits, from_uint8
from .limits import read_data_file

MAX_NAMES_BYTES = 1 << 20  # a class-names file: one short name per line

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def read_file(path: Path, within: Path | None = None) -> bytes:
    """A regular file of at most MAX_DATASET_BYTES inside the data directory (see data.limits)."""
    return read_data_file(path, within=within if within is not None else path.parent)


def read_records(path: Path, label_bytes: int, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records of label byte(s) followed by a C×H×W uint8 image."""
    raw = read_file(path)
    image_size = int(np.prod(image_shape))
    record = label_bytes + image_size
    if len(raw) == 0 or len(raw) % record:
        raise file_error(
            DataError,
            path,
            f"size {len(raw)} is not a positive multiple of the {record}-byte record "
            f"({label_bytes} label byte(s) + {image_shape} image): truncated or wrong image size",
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, *image_shape), rows[:, label_bytes - 1].astype(np.int64)


def class_names(path: Path, count: int, default: tuple[str, ...] | None) -> tuple[str, ...]:
    if path.exists() or path.is_symlink():
        text = read_data_file(path, max_bytes=MAX_NAMES_BYTES, within=path.parent).decode("utf-8", "replace")
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
        if len(names) != count:
            raise file_error(DataError, path, f"expected {count} class names, found {len(names)}")
        return names
    if default is None:
        return tuple(str(i) for i in range(count))
    return default


def check_labels(path: Path, labels: np.ndarray, count: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise file_error(DataError, path, f"labels must lie in 0..{count - 1}, found {labels.min()}..{labels.max()}")


def cifar_directory(root: Path, subdir: str) -> Path:
    return root / subdir if (root / subdir).is_dir() else root


def load_cifar10(data_dir: Path) -> DataSplits:
    directory = cifar_directory(data_dir, "cifar-10-batches-bin")
    parts = [read_records(directory / f"data_batch_{i}.bin", 1, (3, 32, 32)) for i in range(1, 6)]
    test_path = directory / "test_batch.bin"
    test_x, test_y = read_records(test_path, 1, (3, 32, 32))
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    for path, labels in ((directory / "data_batch_1.bin", train_y), (test_path, test_y)):
        check_labels(path, labels, 10)
    classes = class_names(directory / "batches.meta.txt", 10, CIFAR10_CLASSES)
    return DataSplits(from_uint8("cifar10", train_x, train_y, classes), from_uint8("cifar10", test_x, test_y, classes))


def load_cifar100(data_dir: Path) -> DataSplits:
    directory = cifar_directory(data_dir, "cifar-100-binary")
    splits = []
    for split in ("train", "test"):
        path = directory / f"{split}.bin"
        x, y = read_records(path, 2, (3, 32, 32))  # coarse label, fine label, image: keep the fine label
        check_labels(path, y, 100)
        splits.append((x, y))
    classes = class_names(directory / "fine_label_names.txt", 100, None)
    return DataSplits(*(from_uint8("cifar100", x, y, classes) for x, y in splits))


def load_stl10(data_dir: Path) -> DataSplits:
    directory = cifar_directory(data_dir, "stl10_binary")
    splits = []
    for split in ("train", "test"):
        x_path, y_path = directory / f"{split}_X.bin", directory / f"{split}_y.bin"
        raw = read_file(x_path)
        image_size = 3 * 96 * 96
        if len(raw) == 0 or len(raw) % image_size:
            raise file_error(
                DataError,
                x_path,
                f"size {len(raw)} is not a multiple of one 3×96×96 image: truncated or wrong image size",
            )
        # STL-10 stores each channel column-major: transpose H and W back.
        x = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        y = np.frombuffer(read_data_file(y_path, max_bytes=len(x), within=directory), dtype=np.uint8).astype(np.int64)
        y -= 1  # labels are 1..10
        if len(y) != len(x):
            raise file_error(
                DataError, y_path, f"label count mismatch: {len(y)} labels for {len(x)} images in {x_path.name}"
            )
        check_labels(y_path, y, 10)
        splits.append((x, y))
    classes = class_names(directory / "class_names.txt", 10, STL10_CLASSES)
    return DataSplits(*(from_uint8("stl10", x, y, classes) for x, y in splits))
