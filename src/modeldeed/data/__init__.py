"""Datasets by name: `load_dataset("digits")`, `"fashion-mnist"`, `"cifar10"`, `"folder:PATH"`, `"npz:PATH"`,
`"memmap:DIR"` (memory-mapped .npy arrays, read per batch), ..."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .augment import augment
from .dataset import Dataset, DataSplits, from_uint8, split_dataset, tensor_digest

DATASET_NAMES = (
    "digits",
    "fashion-mnist",
    "mnist",
    "cifar10",
    "cifar100",
    "stl10",
    "folder:PATH",
    "npz:PATH",
    "memmap:DIR",
)

__all__ = [
    "DATASET_NAMES",
    "DataSplits",
    "Dataset",
    "augment",
    "from_uint8",
    "load_dataset",
    "split_dataset",
    "tensor_digest",
]


def load_digits_dataset() -> DataSplits:
    """scikit-learn's built-in 8×8 digits (1,797 images): the embedded default, no file, no download."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)[:, None] / 16.0
    import torch

    data = Dataset(
        "digits", torch.from_numpy(x), torch.from_numpy(bunch.target.astype(np.int64)), tuple(str(i) for i in range(10))
    )
    return DataSplits(*split_dataset(data, test_fraction=0.2, seed=0))


def load_dataset(name: str, data_dir: str | Path | None = None) -> DataSplits:
    """Load a dataset's deterministic train/test splits by name; see DATASET_NAMES."""
    from . import binary, idx, user

    if name == "digits":
        return load_digits_dataset()
    if name in ("fashion-mnist", "mnist"):
        return idx.load_idx_dataset(name, data_dir)
    if name in ("cifar10", "cifar100", "stl10"):
        root = data_dir or os.environ.get("MODELDEED_DATA")
        if not root:
            raise DataError(f"{name}: pass --data-dir (or set MODELDEED_DATA) to the folder holding its binary files")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: data directory not found")
        loader = {"cifar10": binary.load_cifar10, "cifar100": binary.load_cifar100, "stl10": binary.load_stl10}[name]
        return loader(root)
    if name.startswith("folder:"):
        return user.load_folder(name.removeprefix("folder:"))
    if name.startswith("npz:"):
        return user.load_npz(name.removeprefix("npz:"))
    if name.startswith("memmap:"):
        from .memmap import load_memmap

        return load_memmap(name.removeprefix("memmap:"))
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
