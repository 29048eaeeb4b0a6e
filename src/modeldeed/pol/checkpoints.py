"""Exact, compressed checkpoint files: every tensor's bits survive; most of the redundancy does not.

Each tensor is stored as one uint8 blob in a safetensors file: its little-endian bytes, optionally
replaced by their difference to the same tensor in a base checkpoint (XOR, or wrapping integer
subtraction with a zigzag sign fold), then byte-shuffled (all first bytes, then all second bytes, ...)
and zstd-compressed. The writer tries raw and sub and keeps the smaller. Between checkpoints the
sign, exponent and top mantissa bits of a weight rarely change, so after the delta and the shuffle
whole byte planes are nearly constant. Loading reverses this and gives back the exact bits.
The byte layout is specified in docs/formats.md ("Compressed checkpoint").
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import FormatError, file_error
from ..files import parse_json_bytes, read_regular_file, write_safetensors_atomic
from ..schema import Document, validate_document

CHECKPOINT_FORMAT = "modeldeed.pol.checkpoint"
ENCODINGS = ("raw", "xor", "sub")
ZSTD_LEVEL = 3
MAX_TENSOR_BYTES = 1 << 34  # 16 GiB per tensor: anything larger is not a checkpoint we wrote

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
DTYPE_BYTES = {name: torch.empty(0, dtype=dtype).element_size() for name, dtype in DTYPES.items()}
UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
MAX_HEADER_BYTES = 16 << 20
MAX_ENTRIES = 1 << 20


class CheckpointTensor(Document):
    name: Annotated[str, Field(min_length=1, max_length=1024)]
    dtype: Literal["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=1 << 40)]], Field(max_length=16)]
    encoding: Literal["raw", "xor", "sub"]


class CheckpointHeader(Document):
    """The safetensors metadata entry `modeldeed` of a compressed checkpoint."""

    format: Literal["modeldeed.pol.checkpoint"]
    version: Literal[1]
    step: Annotated[int, Field(ge=0, le=1 << 40)]
    base_step: Annotated[int, Field(ge=0, le=1 << 40)] | None
    entries: Annotated[list[CheckpointTensor], Field(max_length=MAX_ENTRIES)]


def tensor_words(t: torch.Tensor) -> np.ndarray:
    """The tensor's bits as unsigned integers of its element size (a copy, CPU, little-endian)."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else np.zeros(0, np.uint8)
    return raw.view(UNSIGNED[t.element_size()]).copy()


def words_tensor(words: np.ndarray, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if words.size == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.from_numpy(np.ascontiguousarray(words).view(np.uint8).copy())
    return raw.view(dtype).reshape(shape)


def delta(words: np.ndarray, base: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "xor":
        return words ^ base
    diff = words - base  # wraps modulo 2**bits
    # zigzag: a small negative difference becomes a small unsigned number, like a small positive one
    sign = np.zeros_like(diff) - (diff >> (8 * words.dtype.itemsize - 1))
    return (diff << 1) ^ sign


def undelta(coded: np.ndarray, base: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "xor":
        return coded ^ base
    sign = np.zeros_like(coded) - (coded & 1)
    return ((coded >> 1) ^ sign) + base


def shuffle(words: np.ndarray) -> bytes:
    size = words.dtype.itemsize
    return words.view(np.uint8).reshape(-1, size).T.tobytes()


def unshuffle(data: bytes, size: int, count: int) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(size, count)
    return np.ascontiguousarray(planes.T).reshape(-1).view(UNSIGNED[size])


_ZSTD: dict[object, object] = {}


def zstd_compressor(level: int):  # type: ignore[no-untyped-def]
    """One compressor per level, reused: creating one costs more than compressing a small tensor."""
    import zstandard

    key = ("c", level)
    if key not in _ZSTD:
        _ZSTD[key] = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    return _ZSTD[key]


def zstd_decompressor():  # type: ignore[no-untyped-def]
    import zstandard

    if "d" not in _ZSTD:
        _ZSTD["d"] = zstandard.ZstdDecompressor()
    return _ZSTD["d"]


def encode_tensor(t: torch.Tensor, base: torch.Tensor | None, level: int = ZSTD_LEVEL) -> tuple[str, bytes]:
    """The smallest of the allowed encodings of `t` (deltas only against a base of equal dtype and shape)."""
    compressor = zstd_compressor(level)
    words = tensor_words(t)
    candidates = {"raw": words}
    if base is not None and base.dtype == t.dtype and base.shape == t.shape and words.size:
        base_words = tensor_words(base)
        # "xor" is decoded too, but on weights and momentum "sub" has never lost to it, so it is not tried
        candidates["sub"] = delta(words, base_words, "sub")
    best: tuple[str, bytes] | None = None
    for encoding, coded in candidates.items():
        blob = compressor.compress(shuffle(coded))
        if best is None or len(blob) < len(best[1]):
            best = (encoding, blob)
    assert best is not None
    return best


def decode_tensor(
    blob: bytes, dtype: torch.dtype, shape: tuple[int, ...], encoding: str, base: torch.Tensor | None, where: str
) -> torch.Tensor:
    """Invert encode_tensor; every inconsistency is a FormatError naming `where` (file and tensor)."""
    import zstandard

    size = torch.empty(0, dtype=dtype).element_size()
    count = math.prod(shape)
    expected = count * size
    if expected > MAX_TENSOR_BYTES:
        raise FormatError(f"{where}: declared shape {list(shape)} is implausibly large")
    try:
        declared = zstandard.frame_content_size(blob)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where}: not a zstd frame ({exc})") from None
    if declared != expected:
        raise FormatError(f"{where}: compressed frame holds {declared} bytes, shape {list(shape)} needs {expected}")
    stream = zstd_decompressor().decompressobj()
    try:
        data = stream.decompress(blob)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where}: corrupt compressed data ({exc})") from None
    if len(data) != expected or not stream.eof or stream.unused_data:
        raise FormatError(f"{where}: compressed data is truncated or has trailing bytes")
    words = unshuffle(data, size, count)
    if encoding != "raw":
        if base is None:
            raise FormatError(f"{where}: encoded as a {encoding} delta, but the base checkpoint has no such tensor")
        if base.dtype != dtype or tuple(base.shape) != tuple(shape):
            raise FormatError(f"{where}: delta base is {base.dtype}{tuple(base.shape)}, expected {dtype}{tuple(shape)}")
        words = undelta(words, tensor_words(base), encoding)
    return words_tensor(words, dtype, tuple(shape))


def save_checkpoint(
    path: str | Path,
    step: int,
    tensors: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor] | None = None,
    base_step: int | None = None,
    level: int = ZSTD_LEVEL,
) -> bytes:
    """Write one compressed checkpoint atomically and return its exact bytes (for hashing)."""
    blobs: dict[str, torch.Tensor] = {}
    entries = []
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in DTYPE_NAMES:
            raise FormatError(f"{path}: tensor {name!r} has dtype {t.dtype}, which checkpoints do not support")
        encoding, blob = encode_tensor(t, base.get(name) if base is not None else None, level)
        blobs[name] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        entries.append({"name": name, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "encoding": encoding})
    header = {"format": CHECKPOINT_FORMAT, "version": 1, "step": step, "base_step": base_step, "entries": entries}
    return write_safetensors_atomic(path, blobs, {"modeldeed": json.dumps(header, sort_keys=True)})


def read_checkpoint_bytes(path: str | Path, max_bytes: int = MAX_TENSOR_BYTES) -> bytes:
    return read_regular_file(path, max_bytes=max_bytes)


def load_checkpoint(
    path: str | Path, step: int, base: Mapping[str, torch.Tensor] | None = None, base_step: int | None = None
) -> dict[str, torch.Tensor]:
    """Read and decode a checkpoint file written by save_checkpoint."""
    return decode_checkpoint(read_checkpoint_bytes(path), path, step, base, base_step)


TensorRule = Callable[[str, torch.dtype, tuple[int, ...]], "str | None"]


def decode_checkpoint(
    data: bytes,
    source: str | Path,
    step: int,
    base: Mapping[str, torch.Tensor] | None = None,
    base_step: int | None = None,
    allowed: TensorRule | None = None,
    max_state_bytes: int = MAX_TENSOR_BYTES,
) -> dict[str, torch.Tensor]:
    """Decode a checkpoint's exact bytes (already hashed by the caller), checking it is the one expected.

    `allowed(name, dtype, shape)` returns why a declared tensor may not be in this checkpoint (None if it may);
    it runs on the header before anything is decompressed, so a hostile file cannot make the reader allocate
    tensors the architecture does not have. `max_state_bytes` bounds the decompressed bytes of all tensors
    together (callers pass what the architecture's state can hold, `pol.store.state_budget`): it is checked
    on the declared shapes before the first frame is decompressed, so a small file whose zstd frames expand
    to gigabytes is refused without allocating them.
    """
    blobs, metadata = parse_safetensors(data, source)
    text = metadata.get("modeldeed")
    if text is None:
        raise file_error(FormatError, source, "has no modeldeed checkpoint header (metadata 'modeldeed')")
    where = f"{source} (checkpoint header)"
    header = validate_document(
        CheckpointHeader, parse_json_bytes(text.encode("utf-8"), where, max_bytes=MAX_HEADER_BYTES), where
    )
    if header.step != step:
        raise file_error(
            FormatError, where, f"field 'step' is {header.step}, but the proof lists this file for step {step}"
        )
    if header.base_step != base_step:
        raise file_error(
            FormatError, where, f"field 'base_step' is {header.base_step!r}, but the proof says {base_step!r}"
        )
    if base_step is not None and base is None:
        raise file_error(FormatError, source, "is a delta checkpoint but no base was given")
    names = [entry.name for entry in header.entries]
    if sorted(names) != sorted(blobs) or len(set(names)) != len(names):
        raise file_error(FormatError, source, "header entries do not match the tensors in the file")
    declared = sum(math.prod(entry.shape) * DTYPE_BYTES[entry.dtype] for entry in header.entries)
    if declared > max_state_bytes:
        raise file_error(
            FormatError,
            source,
            f"declares {declared} bytes of tensors, more than the {max_state_bytes} the architecture's state can hold",
        )
    if allowed is not None:
        for entry in header.entries:
            problem = allowed(entry.name, DTYPES[entry.dtype], tuple(entry.shape))
            if problem:
                raise file_error(FormatError, source, f"tensor {entry.name!r}: {problem}")
    out: dict[str, torch.Tensor] = {}
    for entry in header.entries:
        name, dtype, shape, encoding = entry.name, DTYPES[entry.dtype], tuple(entry.shape), entry.encoding
        blob = blobs[name]
        if blob.dtype != torch.uint8 or blob.dim() != 1:
            raise file_error(FormatError, source, f"tensor {name!r} must be a 1-D uint8 blob")
        out[name] = decode_tensor(
            blob.numpy().tobytes(),
            dtype,
            shape,
            encoding,
            base.get(name) if base is not None else None,
            f"{source}: tensor {name!r}",
        )
    return out


def parse_safetensors(data: bytes, source: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of an in-memory safetensors file; never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    if len(data) < 8:
        raise file_error(FormatError, source, f"truncated: {len(data)} bytes is shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(len(data) - 8, 100 << 20):
        raise file_error(
            FormatError, source, f"truncated or corrupt: header length {header_len}, file {len(data)} bytes"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
        tensors = load_safetensors_bytes(data)
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, ValueError, RuntimeError) as exc:
        raise file_error(FormatError, source, f"not a valid safetensors file ({exc})") from None
    metadata = header.get("__metadata__") or {} if isinstance(header, dict) else {}
    if not isinstance(metadata, dict):
        raise file_error(FormatError, source, "safetensors metadata must be an object")
    return tensors, metadata
