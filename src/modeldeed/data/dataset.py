"""The one in-memory form of every dataset: float images in [0, 1] and int64 labels, with a fingerprint."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images `x` (N×C×H×W float32 in [0, 1]), labels `y` (N, int64) and the names of the classes."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.x.dim() != 4:
            raise DataError(f"{self.name}: images must be N×C×H×W, got shape {tuple(self.x.shape)}")
        if self.x.dtype != torch.float32 or self.y.dtype != torch.int64:
            raise DataError(
                f"{self.name}: expected float32 images and int64 labels, got {self.x.dtype}, {self.y.dtype}"
            )
        if self.y.dim() != 1 or len(self.y) != len(self.x):
            raise DataError(f"{self.name}: {len(self.x)} images but labels of shape {tuple(self.y.shape)}")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.classes)):
            raise DataError(
                f"{self.name}: labels must lie in [0, {len(self.classes)}), "
                f"found {int(self.y.min())}..{int(self.y.max())}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 over shapes, dtypes and the exact bytes of images and labels: equal iff the data is equal."""
        return tensor_digest(self.x, self.y)

    def subset(self, indices: np.ndarray | torch.Tensor | list[int], name: str | None = None) -> Dataset:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return Dataset(name or self.name, self.x[index], self.y[index], self.classes)


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 over each tensor's dtype, shape and raw little-endian bytes, in order."""
    digest = hashlib.sha256()
    for t in tensors:
        array = t.detach().to("cpu").contiguous().numpy()
        digest.update(f"{array.dtype.str}{tuple(array.shape)}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def from_uint8(name: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Dataset:
    """uint8 N×C×H×W images and integer labels to a Dataset (pixel / 255)."""
    x = (
        torch.from_numpy(np.array(images, dtype=np.uint8)).to(torch.float32).div_(255.0)
    )  # copy: buffers may be read-only
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())
    return Dataset(name, x, y, classes)


def split_indices(count: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (train, test) indices of `split_dataset`: the same count and seed always give the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test fraction must lie in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(count)
    n_test = max(1, int(round(count * test_fraction)))
    return order[n_test:], order[:n_test]


def split_dataset(data: Dataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A deterministic train/test split: the same data and seed always give the same split."""
    train, test = split_indices(len(data), test_fraction, seed)
    return data.subset(train, data.name), data.subset(test, data.name)


@dataclass(frozen=True, eq=False)
class DataSplits:
    train: Dataset
    test: Dataset

    @property
    def name(self) -> str:
        return self.train.name
