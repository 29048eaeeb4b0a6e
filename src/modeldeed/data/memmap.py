"""Datasets that stay on disk: float32 image arrays mapped from `.npy` files, read per batch.

`memmap:DIR` names a directory holding `train_images.npy` (N×C×H×W float32 in [0, 1]), `train_labels.npy`
(N int64), the same two for `test_`, and optionally `classes.txt` (one name per line). The images are memory
mapped (`files.map_npy`: regular files only, the header's shape and dtype checked against the file size), so a
`Dataset` over them gathers only the rows a step uses; its fingerprint is taken in one chunked pass. Labels
are small and read whole.

`ArraySamples` is the `torch.utils.data.Dataset` a user's `DataLoader` reads through, in worker processes: each
item is (index, image, label), the image copied out of the map, so the batch a step trains on has the very
bytes the verifier's `Dataset` gathers at the same indices.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import map_npy, read_regular_file
from .dataset import Dataset, DataSplits
from .limits import MAX_CLASSES, MAX_IMAGES

MAX_ARRAY_BYTES = 1 << 40  # mapped, not read: bounded by what a disk holds, not by memory
FINGERPRINT_CHUNK = 4096


class MappedDataset(Dataset):
    """A `Dataset` whose images are a read-only memory map; the fingerprint is the same value, taken in chunks."""

    @functools.cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for t in (self.x, self.y):
            array = t.numpy()
            digest.update(f"{array.dtype.str}{tuple(array.shape)}".encode())
            for start in range(0, len(array), FINGERPRINT_CHUNK):
                digest.update(np.ascontiguousarray(array[start : start + FINGERPRINT_CHUNK]).tobytes())
        return digest.hexdigest()


def map_images(path: Path, within: Path) -> np.ndarray:
    images = map_npy(path, within=within, max_bytes=MAX_ARRAY_BYTES, dtypes=("f4",), ndim=4)
    if len(images) > MAX_IMAGES:
        raise DataError(f"{path}: {len(images)} images, more than {MAX_IMAGES}")
    return images


def read_labels(path: Path, within: Path, count: int) -> np.ndarray:
    labels = map_npy(path, within=within, max_bytes=8 * MAX_IMAGES + (1 << 16), dtypes=("i8",), ndim=1)
    if len(labels) != count:
        raise DataError(f"{path}: {len(labels)} labels for {count} images")
    return np.array(labels, dtype=np.int64)  # small: read whole


def class_names(root: Path, labels: np.ndarray) -> tuple[str, ...]:
    file = root / "classes.txt"
    if file.exists():
        names = read_regular_file(file, max_bytes=1 << 24, within=root).decode("utf-8", "replace").splitlines()
        names = [n.strip() for n in names if n.strip()]
    else:
        names = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 1)]
    if not 1 <= len(names) <= MAX_CLASSES:
        raise DataError(f"{root}: {len(names)} classes; expected 1 to {MAX_CLASSES}")
    return tuple(names)


def split(root: Path, prefix: str, name: str, classes: tuple[str, ...] | None) -> Dataset:
    images = map_images(root / f"{prefix}_images.npy", root)
    labels = read_labels(root / f"{prefix}_labels.npy", root, len(images))
    if classes is None:
        classes = class_names(root, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "non-writable array": the map is read-only on purpose
        x = torch.from_numpy(images)
    return MappedDataset(name, x, torch.from_numpy(labels), classes)


def load_memmap(path: str | Path) -> DataSplits:
    """`memmap:DIR`: train and test splits mapped from DIR's .npy files (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: memmap dataset directory not found")
    name = f"memmap:{path}"
    train = split(root, "train", name, None)
    test = split(root, "test", name, train.classes)
    if test.input_shape != train.input_shape:
        raise DataError(f"{root}: test images are {list(test.input_shape)}, training images {list(train.input_shape)}")
    return DataSplits(train, test)


def save_memmap(path: str | Path, splits: DataSplits) -> Path:
    """Write `splits` as a memmap dataset directory (for tests, examples and converting a dataset once)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, data in (("train", splits.train), ("test", splits.test)):
        np.save(root / f"{prefix}_images.npy", data.x.numpy().astype(np.float32), allow_pickle=False)
        np.save(root / f"{prefix}_labels.npy", data.y.numpy().astype(np.int64), allow_pickle=False)
    (root / "classes.txt").write_text("\n".join(splits.train.classes) + "\n", encoding="utf-8")
    return root


class ArraySamples(torch.utils.data.Dataset):
    """(index, image, label) per item, read from the mapped files in whichever process asks (DataLoader workers
    map the files themselves: a map is not pickled to them)."""

    def __init__(self, path: str | Path, prefix: str = "train") -> None:
        self.root, self.prefix = Path(path), prefix
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._length = len(self._arrays()[1])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._images is None or self._labels is None:
            self._images = map_images(self.root / f"{self.prefix}_images.npy", self.root)
            self._labels = read_labels(self.root / f"{self.prefix}_labels.npy", self.root, len(self._images))
        return self._images, self._labels

    def __getstate__(self) -> dict[str, object]:
        return {"root": self.root, "prefix": self.prefix, "_images": None, "_labels": None, "_length": self._length}

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, int]:
        images, labels = self._arrays()
        return index, torch.from_numpy(np.array(images[index], dtype=np.float32)), int(labels[index])
