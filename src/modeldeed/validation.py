"""Checked access to JSON objects read from files a stranger may have written.

Every accessor names the file and the field in its error, so a rejected file says exactly why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import FormatError

_HEX64 = re.compile(r"[0-9a-f]{64}")


class Fields:
    """A JSON object plus where it came from; `fields.int("epochs", minimum=1)` validates as it reads."""

    def __init__(self, obj: Any, source: str | Path, prefix: str = "") -> None:
        if not isinstance(obj, dict):
            raise FormatError(f"{source}: {prefix or 'document'} must be a JSON object")
        self.obj = obj
        self.source = str(source)
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> FormatError:
        return FormatError(f"{self.source}: field '{self._name(key)}' {problem}")

    def has(self, key: str) -> bool:
        return key in self.obj

    def raw(self, key: str) -> Any:
        if key not in self.obj:
            raise self.fail(key, "is missing")
        return self.obj[key]

    def str(self, key: str, *, choices: tuple[str, ...] | None = None, pattern: str | None = None) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, found {type(value).__name__}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}; found {value!r}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self.fail(key, f"has an unexpected form: {value[:80]!r}")
        return value

    def hex64(self, key: str) -> str:
        value = self.str(key)
        if not _HEX64.fullmatch(value):
            raise self.fail(key, "must be 64 lowercase hex digits (a SHA-256 digest)")
        return value

    def int(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"must be an integer, found {type(value).__name__}")
        check_range(self, key, value, minimum, maximum)
        return value

    def float(self, key: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.raw(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(key, f"must be a number, found {type(value).__name__}")
        check_range(self, key, float(value), minimum, maximum)
        return float(value)

    def bool(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, found {type(value).__name__}")
        return value

    def list(self, key: str, *, length: int | None = None) -> list[Any]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, found {type(value).__name__}")
        if length is not None and len(value) != length:
            raise self.fail(key, f"must have {length} entries, found {len(value)}")
        return value

    def int_list(self, key: str, *, length: int | None = None, minimum: int | None = None) -> list[int]:
        values = self.list(key, length=length)
        for i, v in enumerate(values):
            if not isinstance(v, int) or isinstance(v, bool):
                raise self.fail(key, f"entry {i} must be an integer, found {type(v).__name__}")
            if minimum is not None and v < minimum:
                raise self.fail(key, f"entry {i} must be at least {minimum}, found {v}")
        return values

    def str_list(self, key: str, *, length: int | None = None) -> list[str]:
        values = self.list(key, length=length)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise self.fail(key, f"entry {i} must be a string, found {type(v).__name__}")
        return values

    def object(self, key: str) -> Fields:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a JSON object, found {type(value).__name__}")
        return Fields(value, self.source, self._name(key))

    def objects(self, key: str) -> list[Fields]:
        return [
            Fields(item, self.source, f"{self._name(key)}[{i}]")
            if isinstance(item, dict)
            else _raise(self.fail(key, f"entry {i} must be a JSON object"))
            for i, item in enumerate(self.list(key))
        ]

    def expect_format(self, name: str, versions: tuple[int, ...] = (1,)) -> int:
        found = self.str("format")
        if found != name:
            raise self.fail("format", f"must be {name!r}; found {found!r} (is this the right file?)")
        version = self.int("version")
        if version not in versions:
            raise self.fail("version", f"{version} is not supported (supported: {', '.join(map(str, versions))})")
        return version


def check_range(fields: Fields, key: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise fields.fail(key, f"must be at least {minimum}, found {value}")
    if maximum is not None and value > maximum:
        raise fields.fail(key, f"must be at most {maximum}, found {value}")


def _raise(error: Exception) -> Any:
    raise error
