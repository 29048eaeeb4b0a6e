"""Declared JSON formats: a pydantic v2 base for every document modeldeed reads, and one way to load them.

Why declared models: a format written down once as types is checked the same way everywhere, exports a
JSON Schema for `docs/formats.md`, and refuses what it does not know (a field the document's id would not
cover must not ride along). Why these settings:

- `extra="forbid"`: unknown fields are errors, never silently dropped.
- `strict=True`: JSON types are taken as they are; "5" is not an integer, true is not 1. (Strict mode takes
  JSON arrays only as `list`, so models use `list[...]`, not tuples.)
- `allow_inf_nan=False`: no NaN or infinity in any number.
- `frozen=True`: a parsed document is a value.

Documents are read through `files.read_json_object`, which has already bounded the size and depth and
refused duplicate keys, NaN and lone surrogates; `load_document` then validates and turns the first
problem into a `FormatError` that names the file and the field.

Example:
    class Statement(Document):
        format: Literal["modeldeed.pol-statement"]
        version: Literal[2]
        merkle_root: Hex64

    statement = load_document(Statement, "statement.json")
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import FormatError, file_error
from .files import DEFAULT_JSON_BYTES, DEFAULT_JSON_DEPTH, DEFAULT_JSON_MEMORY, read_json_object

D = TypeVar("D", bound="Document")

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]  # a SHA-256 digest, lower-case hex
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
NonNegative = Annotated[int, Field(ge=0, le=2**63 - 1)]
Positive = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Document(BaseModel):
    """Base of every JSON format modeldeed reads from a file a stranger may have written."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def declared_format(model: type[Document]) -> str | None:
    """The value a model's `format: Literal[...]` field requires, if it declares one."""
    field = model.model_fields.get("format")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def validate_document(model: type[D], obj: Any, source: str | Path) -> D:
    """Validate a parsed JSON value as `model`; the first problem becomes a FormatError naming file and field."""
    expected = declared_format(model)
    if expected is not None and isinstance(obj, dict) and obj.get("format") != expected:
        found = obj.get("format")
        shown = repr(found)[:80] if found is not None else "no format field"
        raise file_error(FormatError, source, f"is not a {expected} document ({shown}; is this the right file?)")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise file_error(FormatError, source, describe_error(exc)) from None


def describe_error(exc: ValidationError) -> str:
    """One line for a pydantic error: where (a.b[3]), what, and how many further problems there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = location(first.get("loc", ()))
    shown = repr(first.get("input"))
    detail = f"field '{where}': {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
    if first.get("type") not in ("missing", "extra_forbidden") and len(shown) <= 60:
        detail += f" (found {shown})"
    if len(errors) > 1:
        detail += f"; and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''}"
    return detail


def location(loc: tuple[Any, ...] | list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_document(
    model: type[D],
    path: str | Path,
    *,
    within: str | Path | None = None,
    max_bytes: int = DEFAULT_JSON_BYTES,
    max_depth: int = DEFAULT_JSON_DEPTH,
    max_memory: int = DEFAULT_JSON_MEMORY,
) -> D:
    """Read `path` with the bounded JSON reader and validate it as `model`."""
    obj = read_json_object(path, within=within, max_bytes=max_bytes, max_depth=max_depth, max_memory=max_memory)
    return validate_document(model, obj, path)
