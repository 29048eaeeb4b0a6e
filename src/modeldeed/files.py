"""Writing files so that an interruption never leaves a half-written one behind, and hashing them.

Every writer goes to a temporary name in the same directory and renames it into place:
a rename is atomic on POSIX file systems, so readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # PyTorch is imported only by the functions that handle tensors (the registry never does)
    import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it is renamed onto `path` only if the block succeeds.

    Whatever happens in the block, the temporary file is gone afterwards. An OSError (disk full, file too
    large, read-only directory, permission denied) comes out as an OSError that names `path` (see
    `write_error`), so the CLI can say which file could not be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_error(path: str | Path, exc: OSError) -> OSError:
    """The same OSError (same type and errno, so callers can still tell ENOSPC from EACCES), naming `path`.

    Errors from `write()` and `fsync()` carry no file name; a reader of "No space left on device" needs to
    know which file was being written.
    """
    if exc.filename is not None and str(exc.filename) == str(path):
        return exc
    error = type(exc)(exc.errno, exc.strerror or str(exc), str(path)) if exc.errno else OSError(str(exc))
    if not exc.errno:
        error.filename = str(path)
    return error


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
    from safetensors.torch import save as safetensors_bytes

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


# ------------------------------------------------------------------ reading files a stranger wrote
#
# Every reader below bounds what it reads before it reads it: it opens only regular files (a FIFO would
# hang, /dev/zero would never end), never follows a symlink out of the directory the user named, checks
# the size against a limit first, and decodes JSON with limits on nesting and without NaN, duplicate keys
# or lone surrogates. Each failure is a FormatError that names the file and the problem.

DEFAULT_JSON_BYTES = 16 << 20  # documents (keys, statements, receipts, model.json); bigger formats pass their own
DEFAULT_JSON_DEPTH = 32
DEFAULT_JSON_MEMORY = 256 << 20  # estimated Python objects of one decoded document (json_memory_estimate)
MAX_SAFETENSORS_HEADER = 100 << 20


def _fail(path: str | Path, problem: str) -> Exception:
    from .errors import FormatError, file_error

    return file_error(FormatError, path, problem)


def inside(path: str | Path, within: str | Path) -> bool:
    """Whether `path`, with every symbolic link resolved, is `within` or below it."""
    real, root = os.path.realpath(path), os.path.realpath(within)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def read_regular_file(path: str | Path, *, max_bytes: int, within: str | Path | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, never following a link out of `within`.

    Why each step: `within` is checked on the resolved path, so a symlink that points outside the directory
    the user named is refused before anything outside is opened (and nothing about the outside file is ever
    reported); O_NONBLOCK makes opening a FIFO return at once, and fstat then refuses anything that is not a
    regular file; the size is checked on the open descriptor, and the read stops at the limit even if the
    file grows meanwhile.
    """
    return b"".join(_regular_chunks(path, max_bytes=max_bytes, within=within))


def sha256_regular_file(path: str | Path, *, max_bytes: int, within: str | Path | None = None) -> tuple[str, int]:
    """(SHA-256 hex, size) of a regular file of at most `max_bytes`, read in chunks with the same checks as
    `read_regular_file`: for large files (a model's weights) that must be hashed without being held whole."""
    digest, size = hashlib.sha256(), 0
    for chunk in _regular_chunks(path, max_bytes=max_bytes, within=within):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _open_regular(path: Path, *, max_bytes: int, within: str | Path | None) -> tuple[int, os.stat_result]:
    """An open descriptor and its stat for `path`, checked before anything is read: inside `within` (the path,
    then where the descriptor really points), a regular file (never waits on a FIFO: O_NONBLOCK), at most
    `max_bytes`. The caller owns the descriptor."""
    if within is not None and not inside(path, within):
        raise _fail(path, f"is outside {within} (a symbolic link out of the directory is not followed)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _fail(path, "file not found") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a file") from None
    except OSError as exc:
        raise _fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        if within is not None and not _opened_inside(fd, within):
            raise _fail(path, f"is outside {within} (it was replaced by a link while being opened)")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _fail(path, f"is not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise _fail(path, f"is {info.st_size} bytes, more than the {max_bytes} allowed for it")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _regular_chunks(path: str | Path, *, max_bytes: int, within: str | Path | None) -> Iterator[bytes]:
    path = Path(path)
    fd, _info = _open_regular(path, max_bytes=max_bytes, within=within)
    try:
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            except OSError as exc:
                raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
            if not chunk:
                return
            total += len(chunk)
            if total > max_bytes:
                raise _fail(path, f"grew past the {max_bytes} bytes allowed for it while being read")
            yield chunk
    finally:
        os.close(fd)


MAX_NPY_HEADER = 1 << 16


def map_npy(path: str | Path, *, within: str | Path, max_bytes: int, dtypes: tuple[str, ...], ndim: int) -> Any:
    """A read-only memory map of a `.npy` array file: read per row when indexed, never loaded whole.

    The same checks as `read_regular_file` on the open descriptor (inside `within`, a regular file, at most
    `max_bytes`), then the header (NumPy's own parser, no pickles: object dtypes are refused) must declare a C-order
    array of `ndim` dimensions and one of `dtypes` whose size plus the header is exactly the file's size. The map
    is made from the descriptor that was checked, so a file swapped in meanwhile is never mapped.
    """
    import tokenize

    import numpy as np
    from numpy.lib import format as npy

    path = Path(path)
    fd, info = _open_regular(path, max_bytes=max_bytes, within=within)
    with os.fdopen(fd, "rb") as handle:
        try:
            version = npy.read_magic(handle)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy version {version}")
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran, dtype = reader(handle, max_header_size=MAX_NPY_HEADER)
        except (ValueError, OSError, SyntaxError, TypeError, RecursionError, tokenize.TokenError) as exc:
            raise _fail(path, f"is not a .npy array file ({str(exc)[:200]})") from None
        offset = handle.tell()
        if dtype.hasobject or dtype.str.lstrip("<|=") not in dtypes:
            raise _fail(path, f"holds {dtype.str} elements; expected one of {', '.join(dtypes)} (little-endian)")
        if fortran or len(shape) != ndim:
            raise _fail(
                path,
                f"holds a {'Fortran-order ' if fortran else ''}array of shape {list(shape)}; expected "
                f"{ndim} dimensions in C order",
            )
        count = 1
        for side in shape:
            count *= int(side)
        if offset + count * dtype.itemsize != info.st_size:
            raise _fail(
                path,
                f"is {info.st_size} bytes, but its header declares {list(shape)} {dtype.name} after {offset} header "
                f"bytes ({offset + count * dtype.itemsize} bytes)",
            )
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(handle, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))


def _opened_inside(fd: int, within: str | Path) -> bool:
    """Where the open descriptor really points (Linux: /proc/self/fd): closes the window between the check of
    the path and the open, in which a link could be swapped in. Elsewhere the check of the path stands."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True
    return inside(target, within)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def parse_json_bytes(
    data: bytes,
    source: str | Path,
    *,
    max_depth: int = DEFAULT_JSON_DEPTH,
    max_bytes: int = DEFAULT_JSON_BYTES,
    max_memory: int = DEFAULT_JSON_MEMORY,
) -> Any:
    """Decode JSON strictly: UTF-8, no NaN/Infinity, no duplicate keys, no lone surrogates, bounded depth,
    and an estimate of the Python objects it becomes within `max_memory` bytes (see `json_memory_estimate`).
    """
    if len(data) > max_bytes:
        raise _fail(source, f"is {len(data)} bytes, more than the {max_bytes} allowed for it")
    estimate = json_memory_estimate(data)
    if estimate > max_memory:
        raise _fail(
            source,
            f"would take about {estimate >> 20} MiB as Python objects, more than the {max_memory >> 20} MiB "
            "allowed for it (too many JSON values)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(source, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _fail(source, f"not valid JSON (nested more than {max_depth} levels)") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise _fail(source, f"not valid JSON ({exc})") from None
    problem = _json_problem(obj, max_depth)
    if problem:
        raise _fail(source, f"not valid JSON ({problem})")
    return obj


def json_memory_estimate(data: bytes) -> int:
    """An upper estimate of the memory (bytes) that decoding `data` as JSON takes, from four fast byte counts.

    Why: Python spends 40-250 bytes on each JSON value, so 16 MB of `[],[],...` or `{"a":{}},...` becomes a
    gigabyte of objects and takes a minute to check. Every value but the first follows a comma or a colon or
    opens a container, so counting `,` `:` `[` `{` bytes bounds the values from above (such bytes inside
    strings only make the estimate larger); each is weighed by what its object costs on CPython (a value in a
    list ~40-60 B, a key string ~60 B, a list ~70 B, a dict ~230 B), plus the bytes and the decoded text.
    """
    counts = (data.count(b","), data.count(b":"), data.count(b"["), data.count(b"{"))
    return 2 * len(data) + 64 * counts[0] + 64 * counts[1] + 72 * counts[2] + 232 * counts[3]


def read_json_object(
    path: str | Path,
    *,
    within: str | Path | None = None,
    max_bytes: int = DEFAULT_JSON_BYTES,
    max_depth: int = DEFAULT_JSON_DEPTH,
    max_memory: int = DEFAULT_JSON_MEMORY,
) -> dict[str, Any]:
    """Read a JSON file that must hold an object, through `read_regular_file` and `parse_json_bytes`.

    The file is refused by its size before it is read when it is over `max_bytes` or over what `max_memory`
    allows (decoding takes at least twice the file's bytes, see `json_memory_estimate`): a 1 GB proof.json is
    never read into memory only to be refused by the estimate afterwards.
    """
    data = read_regular_file(path, max_bytes=min(max_bytes, max_memory // 2), within=within)
    obj = parse_json_bytes(data, path, max_depth=max_depth, max_bytes=max_bytes, max_memory=max_memory)
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two values for one key would let two readers see two documents; refuse instead of keeping the last."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key[:40]!r} appears twice in one object")
        obj[key] = value
    return obj


def _json_problem(obj: Any, max_depth: int) -> str | None:
    """Depth and lone surrogates, checked without recursion (so no input can exhaust the stack).

    Only containers go on the stack; strings are checked where they are met and numbers are skipped, so the
    walk allocates nothing per value.
    """
    if isinstance(obj, str):
        return None if _encodable(obj) else "a string holds a lone UTF-16 surrogate"
    stack: list[tuple[Any, int]] = [(obj, 1)] if isinstance(obj, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"nested more than {max_depth} levels"
        if isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    return "a key holds a lone UTF-16 surrogate"
                if isinstance(item, str):
                    if not _encodable(item):
                        return "a string holds a lone UTF-16 surrogate"
                elif isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
        else:
            for item in value:
                if isinstance(item, str):
                    if not _encodable(item):
                        return "a string holds a lone UTF-16 surrogate"
                elif isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safetensors_bound(tensor_bytes: int, tensors: int = 1) -> int:
    """The most bytes a safetensors file holding `tensor_bytes` of data in `tensors` tensors can need."""
    return tensor_bytes + 8 + (64 << 10) + 1024 * tensors


def read_safetensors(path: str | Path, *, max_bytes: int, within: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Load tensors without unpickling, from a regular file of at most `max_bytes` (see `read_regular_file`).

    Callers pass the most the file can honestly hold (e.g. the byte size of the architecture's tensors plus a
    header allowance), so a hostile file is refused by its size before it is decoded.
    """
    return parse_safetensors_bytes(read_regular_file(path, max_bytes=max_bytes, within=within), path)


def parse_safetensors_bytes(data: bytes, source: str | Path) -> dict[str, torch.Tensor]:
    """Decode an in-memory safetensors file; its header length is bounded before the header is parsed."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    if len(data) < 8:
        raise _fail(source, f"truncated: {len(data)} bytes is shorter than a safetensors header")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > min(len(data) - 8, MAX_SAFETENSORS_HEADER):
        raise _fail(source, f"truncated or corrupt: header length {header_len}, file {len(data)} bytes")
    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _fail(source, f"not a valid safetensors file ({exc})") from None
