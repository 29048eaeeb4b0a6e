"""An image folder read per batch: `FolderSamples`, the `torch.utils.data.Dataset` a user's `DataLoader` reads
`folder:DIR` through, decoding each image in a worker process.

Each item is (index, image, label) of the same split `load_dataset("folder:DIR")` makes (files in the fixed
order of `user.folder_files`, split by `dataset.split_indices`), decoded exactly as it decodes them
(`user.read_image`, then pixel / 255 in float32), so the batch a step trains on has the very bytes the
verifier's `Dataset` holds at the same indices: a proof recorded through workers verifies against
`--data folder:DIR`, and a file swapped after the statement changes the dataset's Merkle root and the batch
hashes. Every read is bounded as `user.read_image` bounds it (a regular file inside DIR, at most
`MAX_IMAGE_FILE_BYTES`, at most `MAX_IMAGE_SIDE` per side, read from the header before decoding), and every
image must have the first image's shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, file_error
from .dataset import split_indices
from .user import folder_files, read_image


class FolderSamples(torch.utils.data.Dataset):
    """(index, image, label) per item of one split of `folder:DIR`; only file names are held (cheap to pickle
    to workers); each image is read and decoded when a worker asks for it."""

    def __init__(self, path: str | Path, split: str = "train", split_seed: int = 0) -> None:
        if split not in ("train", "test"):
            raise DataError(f"{path}: split must be 'train' or 'test', got {split!r}")
        self.root = Path(path)
        files, labels, self.classes = folder_files(self.root)
        train, test = split_indices(len(files), seed=split_seed)
        chosen = train if split == "train" else test
        self.files = [files[i] for i in chosen]
        self.labels = np.asarray(labels, dtype=np.int64)[chosen]
        self.shape = read_image(files[0], within=self.root).shape  # the folder's first image fixes the size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, int]:
        file = self.files[index]
        array = read_image(file, within=self.root)
        if array.shape != self.shape:
            raise file_error(
                DataError, file, f"wrong image size {array.shape} (C×H×W); the first image was {self.shape}"
            )
        image = torch.from_numpy(np.array(array, dtype=np.uint8)).to(torch.float32).div_(255.0)  # as from_uint8
        return index, image, int(self.labels[index])
