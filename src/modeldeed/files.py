"""Writing files so that an interruption never leaves a half-written one behind, and hashing them.

Every writer goes to a temporary name in the same directory and renames it into place:
a rename is atomic on POSIX file systems, so readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it is renamed onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8. Used for hashing and for ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def write_json_atomic(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode())


def write_safetensors_atomic(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Save tensors (made contiguous, on the CPU) and return the exact bytes written, for hashing."""
    flat = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    data = safetensors_bytes(flat, metadata=dict(metadata) if metadata else None)
    write_bytes_atomic(path, data)
    return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Parse a JSON file that must hold an object; any failure names the file."""
    from .errors import FormatError, file_error

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise file_error(FormatError, path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise file_error(FormatError, path, f"cannot be read as UTF-8 text ({exc})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise file_error(FormatError, path, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise file_error(FormatError, path, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load tensors without unpickling; a truncated or corrupt file is a FormatError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    from .errors import FormatError, file_error

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise file_error(FormatError, path, "file not found") from None
    except OSError as exc:
        raise file_error(FormatError, path, f"cannot be read ({exc})") from None
    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise file_error(FormatError, path, f"not a valid safetensors file ({exc})") from None
