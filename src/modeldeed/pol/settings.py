"""Training settings read from a file a stranger wrote: every `TrainConfig` field, each of its exact JSON type.

`TrainConfig`'s own checks assume the types (a JSON `true` would pass as a learning rate of 1, a string
epoch count would raise a TypeError), so the types are checked here first, field by field, before the
config is built; every error names the file and the field.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..errors import FormatError, ModeldeedError, file_error
from ..training import TrainConfig

MAX_MILESTONES = 1 << 16


def config_from_json(doc: Any, source: str | Path, field: str, *, seed: int | None = None) -> TrainConfig:
    """A TrainConfig from JSON with every field present and typed; with `seed`, the JSON has no seed field."""

    def fail(problem: str) -> FormatError:
        return file_error(FormatError, source, f"field '{field}' {problem}")  # type: ignore[return-value]

    if not isinstance(doc, dict):
        raise fail("must be a JSON object")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name == "seed" and seed is not None:
            if "seed" in doc:
                raise fail("must not hold the seed (it is committed to, and opened with the proof)")
            values["seed"] = seed
            continue
        if f.name not in doc:
            raise fail(f"lacks the setting '{f.name}'")
        values[f.name] = typed(doc[f.name], f, fail)
    unknown = sorted(set(doc) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise fail(f"holds '{unknown[0]}', which is not a training setting this version knows")
    try:
        return TrainConfig(**values)
    except (ModeldeedError, TypeError, ValueError) as exc:
        raise fail(f"is invalid: {exc}") from None


def typed(value: Any, f: dataclasses.Field, fail: Any) -> Any:  # type: ignore[type-arg]
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail(f"setting '{f.name}' must be true or false, found {value!r}")
        return value
    if isinstance(default, int):
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise fail(f"setting '{f.name}' must be a 64-bit integer, found {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail(f"setting '{f.name}' must be a finite number, found {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str) or len(value) > 256:
            raise fail(f"setting '{f.name}' must be a string, found {value!r}")
        return value
    # lr_milestones: a list of epochs
    if not isinstance(value, list) or len(value) > MAX_MILESTONES:
        raise fail(f"setting '{f.name}' must be a list of integers")
    for item in value:
        if type(item) is not int or not 0 <= item < 2**63:
            raise fail(f"setting '{f.name}' must hold integers >= 0, found {item!r}")
    return tuple(value)
