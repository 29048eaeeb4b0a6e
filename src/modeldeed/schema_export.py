"""Export the JSON Schema of every declared format to docs/schemas/<format>.json.

    python -m modeldeed.schema_export            # write docs/schemas/ (run from the repository root)
    python -m modeldeed.schema_export --check    # exit 1 if a committed schema is missing or out of date

Every `modeldeed.schema.Document` subclass that declares a `format: Literal[...]` is a file format; nested
documents appear inside their parent's schema (`$defs`). Modules are found by walking the package, so a
format added anywhere is exported without being listed here. tests/test_schemas.py runs the check.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

from .schema import Document, declared_format

SKIPPED = ("modeldeed.cli", "modeldeed.__main__", "modeldeed.schema_export")


def import_all() -> None:
    import modeldeed

    for module in pkgutil.walk_packages(modeldeed.__path__, "modeldeed."):
        if not module.name.startswith(SKIPPED):
            importlib.import_module(module.name)


def documents() -> dict[str, type[Document]]:
    """Every declared format, by its `format` value."""
    import_all()
    found: dict[str, type[Document]] = {}
    stack = list(Document.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        name = declared_format(model)
        if name is not None and model.__module__.startswith("modeldeed."):  # not a test's own documents
            if name in found and found[name] is not model:
                raise RuntimeError(f"two documents declare format {name!r}: {found[name]} and {model}")
            found[name] = model
    return dict(sorted(found.items()))


def schemas() -> dict[str, str]:
    """File name -> the exact text of its schema."""
    out = {}
    for name, model in documents().items():
        schema: dict[str, Any] = model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{name}.json", **schema}
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeed.schema_export", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/schemas", help="where the schemas go (default: docs/schemas)")
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    expected = schemas()
    if args.check:
        present = {p.name for p in out.glob("*.json")} if out.is_dir() else set()
        stale = [n for n, text in expected.items() if not (out / n).is_file() or (out / n).read_text() != text]
        extra = sorted(present - set(expected))
        for name in stale:
            print(f"{out / name}: missing or out of date", file=sys.stderr)
        for name in extra:
            print(f"{out / name}: no document declares this format any more", file=sys.stderr)
        if stale or extra:
            print("run `python -m modeldeed.schema_export` and commit docs/schemas/", file=sys.stderr)
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name in {p.name for p in out.glob("*.json")} - set(expected):
        (out / name).unlink()
    for name, text in expected.items():
        (out / name).write_text(text)
    print(f"wrote {len(expected)} schemas to {out}: {', '.join(expected)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
