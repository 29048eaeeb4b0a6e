"""The user's own trigger images and labels (e.g. Adi et al.'s 100 abstract images and their labels), read safely.

Why so careful: the folder may come from anywhere. Only regular files inside the folder are read (through
`modeldeed.files.read_regular_file`, so a link out of it is refused), each file's size and pixel count are
bounded before it is decoded (Pillow's decompression-bomb limit is set explicitly for the call), only the
common raster decoders are allowed (never EPS, which would run Ghostscript), and the number of files is
bounded before any is opened. How each image is made to fit the data is the user's choice and is announced:
`resize` scales to H×W (the aspect ratio is not kept), `center-crop` scales the shorter side to fit and cuts
the centre out. Images are sorted by file name as strings (1.jpg, 10.jpg, 100.jpg, 11.jpg, ...), the order
of Adi et al.'s own loader.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, FormatError, file_error
from ..files import read_regular_file
from .limits import MAX_TRIGGERS, check_trigger_budget

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
FITS = ("resize", "center-crop")
MAX_IMAGE_FILE_BYTES = 64 << 20
MAX_IMAGE_PIXELS = 1 << 24  # 16.7 million pixels, e.g. 4096×4096; Pillow's own default is 89 million
MAX_DIRECTORY_ENTRIES = 100_000
MAX_LABELS_FILE_BYTES = 4 << 20


@dataclass(frozen=True, eq=False)
class UserImages:
    """Trigger images read from a folder, and how they were made to fit."""

    images: torch.Tensor  # N×C×H×W float32, multiples of 1/255
    names: tuple[str, ...]  # file names, in the order of `images`
    fit: str
    refitted: int  # how many had another size than H×W

    def describe(self, folder: str | Path) -> str:
        c, h, w = self.images.shape[1:]
        how = (
            "scaled to fit (aspect ratio not kept)"
            if self.fit == "resize"
            else "scaled so that the shorter side fits, then the centre cut out"
        )
        return (
            f"{len(self.names)} images from {folder}, in file-name order, converted to "
            f"{'grey' if c == 1 else 'RGB'} at {h}×{w}: {self.refitted} of them {how} (--fit {self.fit})"
        )


def image_files(folder: str | Path) -> list[str]:
    """The names of the image files directly in `folder`, sorted as strings; the scan itself is bounded."""
    root = Path(folder)
    if not root.is_dir():
        raise file_error(DataError, root, "trigger image folder not found")
    names = []
    with os.scandir(root) as entries:
        for seen, entry in enumerate(entries):
            if seen >= MAX_DIRECTORY_ENTRIES:
                raise file_error(DataError, root, f"holds more than {MAX_DIRECTORY_ENTRIES:,} entries")
            if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
                continue
            if entry.is_dir(follow_symlinks=False):
                continue
            names.append(entry.name)
            if len(names) > MAX_TRIGGERS:
                raise file_error(DataError, root, f"holds more than {MAX_TRIGGERS:,} images (the most a key can use)")
    if not names:
        raise file_error(DataError, root, f"no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return sorted(names)


def read_trigger_images(
    folder: str | Path, input_shape: Sequence[int], *, fit: str = "resize", names: Sequence[str] | None = None
) -> UserImages:
    """Read the image files `names` (default: all of them) of `folder` as C×H×W floats in [0, 1]."""
    from PIL import Image

    channels, height, width = (int(d) for d in input_shape)
    if channels not in (1, 3):
        raise DataError(f"trigger images from a folder need 1 or 3 channels; the data has {channels}")
    if fit not in FITS:
        raise DataError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    root = Path(folder)
    names = list(names) if names is not None else image_files(root)
    check_trigger_budget(len(names), (channels, height, width))
    arrays, refitted = [], 0
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        for name in names:
            array, changed = _read_one(root / name, root, channels, height, width, fit)
            arrays.append(array)
            refitted += changed
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    images = torch.from_numpy(np.stack(arrays)).to(torch.float32).div_(255.0)
    return UserImages(images, tuple(names), fit, refitted)


def _read_one(path: Path, root: Path, channels: int, height: int, width: int, fit: str) -> tuple[np.ndarray, bool]:
    from PIL import Image, UnidentifiedImageError

    data = read_regular_file(path, max_bytes=MAX_IMAGE_FILE_BYTES, within=root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise file_error(DataError, path, f"is {w}×{h} pixels, more than the {MAX_IMAGE_PIXELS:,} allowed")
                img = img.convert("L" if channels == 1 else "RGB")
                changed = (w, h) != (width, height)
                if changed:
                    img = _fit(img, width, height, fit)
                array = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise file_error(DataError, path, f"declares more than {MAX_IMAGE_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise file_error(DataError, path, f"not a readable image ({str(exc).splitlines()[0][:200]})") from None
    return (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)), changed


def _fit(img, width: int, height: int, fit: str):  # type: ignore[no-untyped-def]
    from PIL import Image

    if fit == "resize":
        return img.resize((width, height), Image.Resampling.LANCZOS)
    scale = max(width / img.width, height / img.height)
    scaled = (max(width, math.ceil(img.width * scale)), max(height, math.ceil(img.height * scale)))
    img = img.resize(scaled, Image.Resampling.LANCZOS)
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    return img.crop((left, top, left + width, top + height))


def load_trigger_images(
    folder: str | Path, input_shape: Sequence[int], count: int | None = None, *, fit: str = "resize"
) -> torch.Tensor:
    """Every image file in `folder` (or `count` of them, picked by `secrets`), fitted to C×H×W."""
    from .keygen import KeyRandomness

    names = image_files(folder)
    if count is not None:
        if count > len(names):
            raise file_error(DataError, folder, f"holds {len(names)} images, {count} were asked for")
        names = [names[i] for i in KeyRandomness().subset(len(names), count)]
    return read_trigger_images(folder, input_shape, fit=fit, names=names).images


def read_labels_file(path: str | Path, names: Sequence[str], classes: Sequence[str]) -> list[int]:
    """The user's labels for the images `names`, from a text file; a label is a class index or a class name.

    Two forms: one label per line, in the order of the images sorted by file name (Adi et al.'s
    labels-cifar.txt), or `NAME LABEL` (or `NAME,LABEL`) per line, naming each image exactly once.
    Blank lines and lines starting with '#' are skipped.
    """
    path = Path(path)
    text = read_regular_file(path, max_bytes=MAX_LABELS_FILE_BYTES)
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise file_error(FormatError, path, "is not UTF-8 text") from None
    by_name = {c: i for i, c in enumerate(classes)}
    rows: list[tuple[int, str | None, str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(",", 1) if "," in line else line.split()
        if len(parts) not in (1, 2):
            raise file_error(FormatError, path, f"line {number}: expected LABEL or NAME LABEL, found {line[:80]!r}")
        rows.append((number, parts[0].strip() if len(parts) == 2 else None, parts[-1].strip()))
    if not rows:
        raise file_error(FormatError, path, "holds no labels")
    if len({name is None for _, name, _ in rows}) > 1:
        raise file_error(FormatError, path, "mixes lines with and without image names; use one form")

    def label(number: int, token: str) -> int:
        if re.fullmatch(r"\d{1,9}", token) and int(token) < len(classes):
            return int(token)
        if token in by_name:
            return by_name[token]
        raise file_error(
            FormatError,
            path,
            f"line {number}: {token[:40]!r} is neither a class index below {len(classes)} nor a class name",
        )

    if rows[0][1] is None:
        if len(rows) != len(names):
            raise file_error(FormatError, path, f"has {len(rows)} labels for {len(names)} images")
        return [label(number, token) for number, _, token in rows]
    found: dict[str, int] = {}
    for number, name, token in rows:
        assert name is not None
        if name in found:
            raise file_error(FormatError, path, f"line {number}: image {name[:80]!r} is labelled twice")
        found[name] = label(number, token)
    missing = [n for n in names if n not in found]
    unknown = sorted(set(found) - set(names))
    if missing or unknown:
        problem = f"no label for {missing[0]!r}" if missing else f"labels {unknown[0]!r}, which is not an image here"
        raise file_error(FormatError, path, f"{problem} ({len(missing)} missing, {len(unknown)} unknown)")
    return [found[n] for n in names]
