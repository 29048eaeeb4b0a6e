"""Writers for small, synthetic dataset files in the official layouts (IDX, CIFAR/STL binary)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = False) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_dir(directory: Path, n_train: int = 30, n_test: int = 10, compress: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x803, compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n), 0x801, compress)
    return directory


def cifar_records(
    n: int, label_bytes: int, classes: int, seed: int, image_size: int = 3 * 32 * 32
) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 256, (n, image_size), dtype=np.uint8)
    rows = []
    for label, image in zip(labels, images):
        rows.append(bytes([label // 5] * (label_bytes - 1) + [label]) + image.tobytes())
    return b"".join(rows), labels
