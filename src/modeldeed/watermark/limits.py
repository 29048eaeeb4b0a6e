"""The bounds on every count and size a watermark key can ask for, checked before anything is allocated.

Why these numbers:

- `MAX_TRIGGERS` (10,000 triggers in one key): a verification can only use as many triggers as a model can
  learn without losing accuracy. The paper uses 100; a cut-and-choose key at n = 256 security bits has 1,024;
  a model that has to memorise tens of thousands of random labels is no longer the model it was. The bound
  also keeps the exact chance figure (a sum of at most 10,000 big-integer terms) fast and a key's JSON
  (about 260 bytes a trigger) near 2.6 MB, well inside the 16 MB any key file may have.
- `MAX_TRIGGER_BYTES` (256 MiB of float32 trigger images): for large inputs the image memory binds before
  the count does (3×96×96 images: about 2,400 triggers). Key generation holds the images two or three times
  over (drawing, the tensor, its file), which keeps any key below 1 GB.
- `MAX_INPUT_ELEMENTS` (2^24 values a trigger image, e.g. 3×2048×2048) and `MAX_CLASSES` (100,000): far
  above any dataset modeldeed reads, low enough that a hostile key cannot ask for absurd allocations.
- `MAX_SECURITY_BITS` (1,024): a chance of 2^-1024 already means nothing more than 2^-256 does; larger
  levels would only make the search for the minimum |T| slow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import ModeldeedError

MAX_TRIGGERS = 10_000
MAX_TRIGGER_BYTES = 256 << 20
MAX_INPUT_ELEMENTS = 1 << 24
MAX_INPUT_DIM = 1 << 14
MAX_CLASSES = 100_000
MAX_SECURITY_BITS = 1024
MAX_SEED = 2**64 - 1


def check_count(name: str, value: object, *, minimum: int = 1, maximum: int = MAX_TRIGGERS) -> int:
    """An integer in [minimum, maximum], or a ModeldeedError that names it (no bools, no floats)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModeldeedError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ModeldeedError(f"{name} must lie in [{minimum}, {maximum:,}], got {value:,}")
    return value


def check_input_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    dims = tuple(shape)
    if len(dims) != 3 or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise ModeldeedError(f"input shape must be three integers [C, H, W], got {list(dims)}")
    if min(dims) < 1 or max(dims) > MAX_INPUT_DIM or math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise ModeldeedError(
            f"input shape {list(dims)} is out of range (each axis 1..{MAX_INPUT_DIM}, "
            f"at most {MAX_INPUT_ELEMENTS:,} values an image)"
        )
    return dims  # type: ignore[return-value]


def trigger_bytes(count: int, shape: Sequence[int]) -> int:
    return 4 * count * math.prod(shape)


def check_trigger_budget(count: int, shape: Sequence[int]) -> int:
    """Refuse a trigger set whose images would need more than MAX_TRIGGER_BYTES; returns the estimate."""
    check_count("the number of triggers", count)
    need = trigger_bytes(count, check_input_shape(shape))
    if need > MAX_TRIGGER_BYTES:
        most = MAX_TRIGGER_BYTES // trigger_bytes(1, shape)
        raise ModeldeedError(
            f"{count:,} trigger images of shape {list(shape)} need {need / 2**20:,.0f} MiB; at most "
            f"{MAX_TRIGGER_BYTES >> 20} MiB are allowed, i.e. {most:,} triggers of this shape"
        )
    return need


def check_epsilon(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModeldeedError(f"epsilon must be a finite number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ModeldeedError(f"epsilon must lie in [0, 1), got {value}")
    return float(value)
