"""The digest of an artefact as the log records it: SHA-256 of its canonical bytes. Knows no scheme.

    JSON document  canonical bytes = canonical JSON of the parsed document (sorted keys, no spaces, UTF-8:
                   `modeldeed.files.canonical_json`), so re-indenting a file does not change its digest
    directory      canonical bytes = canonical JSON of its manifest:
                   {"format": "modeldeed.registry-manifest", "version": 1,
                    "files": [{"path": "a/b.json", "size": 123, "sha256": "<hex>"}, ...]}   sorted by path
    other file     its bytes

The scheme layers (watermark keys, PoL statements and proofs, models) choose *which* files or documents
they register and call these functions; the same functions recompute the digest when a receipt is checked.
A manifest covers regular files only, read with the bounded readers: nothing outside the directory is
followed, FIFOs and devices are refused, and counts and sizes are capped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import FormatError, file_error
from ..files import canonical_json, read_json_object, sha256_regular_file

MANIFEST_FORMAT = "modeldeed.registry-manifest"
MAX_FILES = 10_000
MAX_FILE_BYTES = 64 << 30
MAX_JSON_BYTES = 64 << 20


def json_digest(document: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of an already parsed document."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def json_file_digest(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """SHA-256 (hex) of the canonical JSON of a JSON object file (read strictly and bounded)."""
    return json_digest(read_json_object(path, max_bytes=max_bytes))


def file_digest(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """SHA-256 (hex) of a regular file's bytes."""
    return sha256_regular_file(path, max_bytes=max_bytes)[0]


def _walk(root: Path) -> Iterable[Path]:
    """Every regular file below root (relative paths), refusing what a manifest cannot honestly cover."""
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                raise file_error(FormatError, Path(folder) / name, "is a symbolic link to a directory (not followed)")
        for name in sorted(files):
            count += 1
            if count > MAX_FILES:
                raise file_error(FormatError, root, f"holds more than {MAX_FILES} files")
            yield (Path(folder) / name).relative_to(root)


def directory_manifest(
    root: str | Path, names: Iterable[str] | None = None, *, max_file_bytes: int = MAX_FILE_BYTES
) -> dict[str, Any]:
    """The manifest of `root`: every regular file below it, or only the relative paths in `names`."""
    root = Path(root)
    if not root.is_dir():
        raise file_error(FormatError, root, "is not a directory")
    paths = sorted({Path(n) for n in names}) if names is not None else list(_walk(root))
    entries = []
    for relative in paths:
        if relative.is_absolute() or ".." in relative.parts:
            raise file_error(FormatError, relative, "is not a path inside the directory")
        digest, size = sha256_regular_file(root / relative, max_bytes=max_file_bytes, within=root)
        entries.append({"path": relative.as_posix(), "size": size, "sha256": digest})
    entries.sort(key=lambda e: e["path"].encode())
    return {"format": MANIFEST_FORMAT, "version": 1, "files": entries}


def directory_digest(root: str | Path, names: Iterable[str] | None = None) -> str:
    """SHA-256 (hex) of the canonical JSON of `directory_manifest(root, names)`."""
    return json_digest(directory_manifest(root, names))
