"""Bounds on what a dataset file may make modeldeed allocate, and the bounded readers built on them.

Every dataset reader learns sizes from a header it reads (an IDX header's dimensions, an .npy header's shape,
an image's width and height) and checks them against these limits and against the bytes the file really
holds *before* it allocates anything. The limits are far above the datasets modeldeed is for:

- `MAX_DATASET_BYTES` (1 GiB of uint8 pixels per file): Fashion-MNIST's training images are 47 MB, CIFAR-10's
  150 MB, STL-10's labelled images 360 MB. The float32 tensor made from them is 4× this.
- `MAX_EXPANSION` (100×): what a compressed file (gzip IDX, deflated npz) may expand to relative to its size on
  disk. Real image data compresses 2–10×; a "zip bomb" of zeros compresses 1000×.
- `MAX_IMAGE_SIDE` (8192 pixels) and `MAX_IMAGE_FILE_BYTES` (64 MiB) for each image of an image folder:
  read from the image's header before it is decoded, so a small PNG that claims 10^5 × 10^5 pixels is refused.
- `MAX_CLASSES` (100,000) classes, `MAX_IMAGES` (10 million) images per folder.

Files inside a directory the user named are read with `within=` that directory: a symbolic link out of it is
refused before anything outside is opened.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from ..errors import DataError, FormatError, file_error
from ..files import read_regular_file

MAX_DATASET_BYTES = 1 << 30
MAX_EXPANSION = 100
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_FILE_BYTES = 64 << 20
MAX_CLASSES = 100_000
MAX_IMAGES = 10_000_000


def read_data_file(path: Path, *, max_bytes: int = MAX_DATASET_BYTES, within: Path | None = None) -> bytes:
    """A regular dataset file of at most `max_bytes`, as bytes; every problem is a DataError naming the file."""
    try:
        return read_regular_file(path, max_bytes=max_bytes, within=within)
    except FormatError as exc:
        raise DataError(str(exc)) from None


def check_declared_bytes(path: Path, declared: int, what: str) -> None:
    """A size computed from a header must be within MAX_DATASET_BYTES before anything of that size is made."""
    if declared > MAX_DATASET_BYTES:
        raise file_error(
            DataError,
            path,
            f"its header declares {what} of {declared:,} bytes, more than the {MAX_DATASET_BYTES:,} allowed",
        )


def gunzip_prefix(path: Path, data: bytes, length: int) -> bytes:
    """The first `length` decompressed bytes of a gzip file (to read a header before sizing the rest)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        head = inflater.decompress(data, length)
    except zlib.error as exc:
        raise file_error(DataError, path, f"cannot be read (corrupt gzip data: {exc})") from None
    if len(head) < length and not inflater.eof:
        raise file_error(DataError, path, "cannot be read (truncated gzip data)")
    return head


def gunzip_bounded(path: Path, data: bytes, limit: int) -> bytes:
    """Decompress a gzip file, producing at most `limit` bytes (and at most MAX_EXPANSION × its size)."""
    limit = min(limit, MAX_EXPANSION * max(len(data), 1), MAX_DATASET_BYTES)
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise file_error(DataError, path, f"cannot be read (corrupt gzip data: {exc})") from None
    if len(out) > limit:
        raise file_error(DataError, path, f"decompresses to more than the {limit:,} bytes its header allows")
    if not inflater.eof:
        raise file_error(DataError, path, "cannot be read (truncated gzip data)")
    return out
