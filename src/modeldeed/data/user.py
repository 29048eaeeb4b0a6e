"""The user's own data: a folder of images with one sub-folder per class, or an .npz of arrays x and y."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, file_error
from .dataset import Dataset, DataSplits, from_uint8, split_dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_folder(path: str | Path, split_seed: int = 0) -> DataSplits:
    """Images in PATH/<class>/*.png (any format Pillow reads); all must share one size, which is checked."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise file_error(DataError, root, "folder not found (expected one sub-folder per class)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise file_error(DataError, root, "has no class sub-folders")
    images: list[np.ndarray] = []
    labels: list[int] = []
    shape: tuple[int, ...] | None = None
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(file) as img:
                    array = np.asarray(img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise file_error(DataError, file, f"not a readable image ({exc})") from None
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise file_error(
                    DataError, file, f"wrong image size {array.shape} (C×H×W); the first image was {shape}"
                )
            images.append(array)
            labels.append(label)
    if not images:
        raise file_error(DataError, root, f"no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    data = from_uint8(f"folder:{root.name}", np.stack(images), np.array(labels), tuple(p.name for p in class_dirs))
    return DataSplits(*split_dataset(data, seed=split_seed))


def load_npz(path: str | Path, split_seed: int = 0) -> DataSplits:
    """Arrays `x` (N×C×H×W or N×H×W; uint8, or float in [0, 1]) and `y` (integers); never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise file_error(DataError, path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise file_error(
                    DataError, path, f"missing array(s) {', '.join(sorted(missing))}; expected 'x' and 'y'"
                )
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise file_error(DataError, path, f"not a readable .npz of plain arrays ({exc})") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise file_error(DataError, path, f"'x' must be N×C×H×W or N×H×W, got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise file_error(
            DataError,
            path,
            f"'y' must hold one integer label per image: {len(x)} images, y of shape {y.shape} and dtype {y.dtype}",
        )
    if y.size and y.min() < 0:
        raise file_error(DataError, path, f"labels must be non-negative, found {y.min()}")
    classes = tuple(str(i) for i in range(int(y.max()) + 1 if y.size else 0))
    name = f"npz:{path.stem}"
    if x.dtype == np.uint8:
        data = from_uint8(name, x, y, classes)
    elif np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise file_error(DataError, path, "float images must be finite and lie in [0, 1]")
        import torch

        data = Dataset(name, torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), classes)
    else:
        raise file_error(DataError, path, f"'x' must be uint8 or float, got {x.dtype}")
    return DataSplits(*split_dataset(data, seed=split_seed))
