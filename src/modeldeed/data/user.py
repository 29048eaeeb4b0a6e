"""The user's own data: a folder of images with one sub-folder per class, or an .npz of arrays x and y.

Both are read within the bounds of `data.limits`: image files are regular files inside the folder (a link
out of it is refused), each image's size is read from its header and checked before it is decoded, and an
.npz's arrays are sized from their .npy headers (shape, dtype; object arrays refused) and from the zip's
declared sizes before any array is decompressed.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, file_error
from ..files import inside
from .dataset import Dataset, DataSplits, from_uint8, split_dataset
from .limits import (
    MAX_CLASSES,
    MAX_DATASET_BYTES,
    MAX_EXPANSION,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_SIDE,
    MAX_IMAGES,
    read_data_file,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_image(path: Path, *, within: Path, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """One image file as a uint8 C×H×W array (grey or RGB), bounded before it is decoded.

    The file must be a regular file of at most MAX_IMAGE_FILE_BYTES inside `within`; its width and height,
    read from the header, must be at most `max_side`. Decoding is Pillow's, on bytes already in memory.
    """
    from PIL import Image

    data = read_data_file(path, max_bytes=MAX_IMAGE_FILE_BYTES, within=within)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if not (1 <= width <= max_side and 1 <= height <= max_side):
                raise file_error(DataError, path, f"image of {width}×{height} pixels; at most {max_side} per side")
            array = np.asarray(img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB"))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on hostile bytes; all mean "bad image"
        raise file_error(DataError, path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def folder_files(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files of `folder:DIR` in their fixed order (class sub-folders sorted by name, files sorted by
    name within each), their labels and the class names. Links out of DIR are refused; nothing is decoded."""
    if not root.is_dir():
        raise file_error(DataError, root, "folder not found (expected one sub-folder per class)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise file_error(DataError, root, "has no class sub-folders")
    if len(class_dirs) > MAX_CLASSES:
        raise file_error(DataError, root, f"has {len(class_dirs)} class sub-folders, more than {MAX_CLASSES}")
    for class_dir in class_dirs:
        if not inside(class_dir, root):
            raise file_error(DataError, class_dir, f"is a link out of {root}; it is not followed")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            if len(files) >= MAX_IMAGES:
                raise file_error(DataError, root, f"holds more than {MAX_IMAGES:,} images")
            files.append(file)
            labels.append(label)
    if not files:
        raise file_error(DataError, root, f"no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, labels, tuple(p.name for p in class_dirs)


def load_folder(path: str | Path, split_seed: int = 0) -> DataSplits:
    """Images in PATH/<class>/*.png (any format Pillow reads); all must share one size, which is checked."""
    root = Path(path)
    files, labels, classes = folder_files(root)
    images: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
    total = 0
    for file in files:
        array = read_image(file, within=root)
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise file_error(DataError, file, f"wrong image size {array.shape} (C×H×W); the first image was {shape}")
        total += array.nbytes
        if total > MAX_DATASET_BYTES:
            raise file_error(DataError, root, f"holds more than {MAX_DATASET_BYTES:,} bytes of pixels")
        images.append(array)
    data = from_uint8(f"folder:{root.name}", np.stack(images), np.array(labels), classes)
    return DataSplits(*split_dataset(data, seed=split_seed))


def read_npz_array(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """One array of an .npz, its .npy header checked before its data is decompressed."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise file_error(DataError, path, f"missing array {name!r}; expected 'x' and 'y'") from None
    if info.file_size > min(MAX_DATASET_BYTES, MAX_EXPANSION * max(info.compress_size, 1) + 4096):
        raise file_error(
            DataError, path, f"array {name!r} declares {info.file_size:,} bytes ({info.compress_size:,} compressed)"
        )
    fmt = np.lib.format
    with archive.open(info) as handle:
        try:
            version = fmt.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(handle, max_header_size=10_000)
            else:
                shape, fortran, dtype = fmt.read_array_header_2_0(handle, max_header_size=10_000)
        except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile) as exc:
            raise file_error(DataError, path, f"array {name!r}: not a readable .npy header ({exc})") from None
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.itemsize > 8:
            raise file_error(DataError, path, f"array {name!r} has dtype {dtype}; plain integers or floats only")
        if len(shape) > 4:
            raise file_error(DataError, path, f"array {name!r} has {len(shape)} dimensions")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise file_error(
                DataError, path, f"array {name!r} of shape {shape} needs {nbytes:,} bytes; the file holds fewer"
            )
        try:
            raw = handle.read(nbytes + 1)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise file_error(DataError, path, f"array {name!r} cannot be read ({exc})") from None
    if len(raw) != nbytes:
        raise file_error(DataError, path, f"array {name!r}: {len(raw):,} bytes of data for shape {shape} ({nbytes:,})")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(array)


def load_npz(path: str | Path, split_seed: int = 0) -> DataSplits:
    """Arrays `x` (N×C×H×W or N×H×W; uint8, or float in [0, 1]) and `y` (integers); never unpickled."""
    path = Path(path)
    raw = read_data_file(path)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            x = read_npz_array(path, archive, "x")
            y = read_npz_array(path, archive, "y")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        if isinstance(exc, DataError):
            raise
        raise file_error(DataError, path, f"not a readable .npz of plain arrays ({exc})") from None
    del raw
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise file_error(DataError, path, f"'x' must be N×C×H×W or N×H×W, got shape {x.shape}")
    if not all(1 <= side <= MAX_IMAGE_SIDE for side in x.shape[2:]) or not 1 <= x.shape[1] <= 1024:
        raise file_error(
            DataError, path, f"'x' has images of shape {x.shape[1:]} (C×H×W): channels or size out of range"
        )
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise file_error(
            DataError,
            path,
            f"'y' must hold one integer label per image: {len(x)} images, y of shape {y.shape} and dtype {y.dtype}",
        )
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise file_error(DataError, path, f"labels must lie in 0..{MAX_CLASSES - 1}, found {y.min()}..{y.max()}")
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
