"""MNIST-style IDX files (Fashion-MNIST, MNIST), plain or gzip-compressed."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, file_error
from .dataset import DataSplits, from_uint8

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))
DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def find_idx_file(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise file_error(DataError, directory / (stem + "[.gz]"), "file not found (expected an IDX file, plain or .gz)")


def read_idx_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise file_error(DataError, path, f"cannot be read ({exc})") from None


def parse_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse one IDX array; check the magic number, the header and that the payload is complete."""
    raw = read_idx_bytes(path)
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise file_error(
            DataError, path, f"truncated: {len(raw)} bytes is shorter than the {header_len}-byte IDX header"
        )
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise file_error(DataError, path, f"wrong magic number 0x{found:08x}, expected 0x{magic:08x}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header_len + int(np.prod(dims))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise file_error(
            DataError, path, f"{problem}: header says {dims} ({expected} bytes), file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def load_idx_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = find_idx_file(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx_file(directory, f"{prefix}-labels-idx1-ubyte")
    images = parse_idx(images_path, IMAGES_MAGIC, 3)
    labels = parse_idx(labels_path, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise file_error(
            DataError,
            labels_path,
            f"label count mismatch: {len(labels)} labels for {len(images)} images in {images_path.name}",
        )
    if labels.size and labels.max() > 9:
        raise file_error(DataError, labels_path, f"labels must lie in 0..9, found {int(labels.max())}")
    return images[:, None, :, :], labels


def load_idx_dataset(name: str, data_dir: str | Path | None) -> DataSplits:
    # Only Fashion-MNIST has a default folder (Debian's dataset-fashion-mnist): MNIST's IDX files look exactly
    # the same, so falling back to it for `mnist` would train on Fashion-MNIST without a word.
    chosen = data_dir or os.environ.get("MODELDEED_DATA") or (DEFAULT_IDX_DIR if name == "fashion-mnist" else None)
    if chosen is None:
        raise DataError(f"{name}: pass --data-dir (or set MODELDEED_DATA) to the folder holding its IDX files")
    directory = Path(chosen)
    if not directory.is_dir():
        hint = (
            " (install Debian's package dataset-fashion-mnist, or pass --data-dir)"
            if name == "fashion-mnist"
            else " (pass --data-dir)"
        )
        raise file_error(DataError, directory, f"data directory not found{hint}")
    classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    train_x, train_y = load_idx_pair(directory, "train")
    test_x, test_y = load_idx_pair(directory, "t10k")
    return DataSplits(from_uint8(name, train_x, train_y, classes), from_uint8(name, test_x, test_y, classes))
