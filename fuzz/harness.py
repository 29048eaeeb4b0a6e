"""What every atheris target shares: the property, a JSON-aware mutator, and the seed corpora's location.

The property of every target: an input either parses or raises `ModeldeedError` (FormatError, DataError);
any other exception is a finding. Memory and time are bounded by libFuzzer itself (`-rss_limit_mb`,
`-timeout`, set by `fuzz/run.sh`), so an input that makes a parser allocate or loop without bound is a
finding too.

The mutator: half the time libFuzzer's own byte mutations; otherwise, when the input is JSON (or holds JSON,
as a model.json does), a structural mutation of one node: delete or duplicate a field, put a value of
another type, a huge or negative number, a very long string, a deeply nested array or a lone surrogate in
its place, truncate or repeat a list. These reach the validators behind the parser, which random bytes
rarely do.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = Path(os.environ.get("FUZZ_CORPUS", FUZZ_DIR / "corpus"))
WORK_DIR = Path(os.environ.get("FUZZ_WORK", FUZZ_DIR / "work"))

HUGE = [2**63, 2**64, 2**64 + 1, -1, -(2**63) - 1, 10**40, 0, 1 << 40]
ODD = [None, True, False, "", "x" * 5000, [], {}, 1.5, -0.0, 1e308, [[[]]], {"a": 1}, "\U0001f600", "0" * 64]


def nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `doc` (the root included)."""
    out = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(nodes(value, (*path, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc[:50]):
            out.extend(nodes(value, (*path, index)))
    return out


def replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def mutate_json(doc: Any, rng: random.Random) -> str:
    """One structural mutation of a parsed JSON document, returned as text (some mutations are textual)."""
    paths = nodes(doc)
    path = rng.choice(paths)
    target = get(doc, path)
    choice = rng.randrange(10)
    if choice == 0 and path:
        parent = get(doc, path[:-1])
        del parent[path[-1]]
    elif choice == 1:
        replace(doc, path, rng.choice(HUGE))
    elif choice == 2:
        replace(doc, path, copy.deepcopy(rng.choice(ODD)))
    elif choice == 3:
        replace(doc, path, json.loads("[" * 200 + "]" * 200) if rng.random() < 0.5 else [target] * 3)
    elif choice == 4 and isinstance(target, list) and target:
        replace(doc, path, target[: rng.randrange(len(target))] if rng.random() < 0.5 else target + target)
    elif choice == 5 and isinstance(target, (int, float)) and not isinstance(target, bool):
        replace(doc, path, target * rng.choice([-1, 2, 1000, 2**32]) + rng.choice([0, 1, -1]))
    elif choice == 6 and isinstance(target, str):
        replace(doc, path, target[: rng.randrange(len(target) + 1)] + rng.choice(["", "A", "0", "/..", "\x00"]))
    elif choice == 7 and isinstance(target, dict) and target:  # duplicate a key (textually: dicts cannot)
        key = rng.choice(list(target))
        text = json.dumps(doc)
        marker = json.dumps({key: target[key]})[1:-1]
        return text.replace(marker, marker + ", " + marker, 1)
    elif choice == 8:  # a lone surrogate or a NaN token, textually
        text = json.dumps(doc)
        token = rng.choice(['"\\ud800"', "NaN", "Infinity", "1e999", "-1e999"])
        return text.replace(json.dumps(target), token, 1) if path else token
    else:
        replace(doc, path, copy.deepcopy(rng.choice(HUGE + ODD)))
    return json.dumps(doc)


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    try:
        out = mutate_json(doc, rng).encode("utf-8", "surrogatepass")
    except (RecursionError, TypeError, ValueError, KeyError, IndexError):
        return atheris.Mutate(data, max_size)
    return out[:max_size]


def safetensors_mutator(data: bytes, max_size: int, seed: int, prefix: int = 0) -> bytes:
    """Half the time libFuzzer's byte mutations; otherwise a structural mutation of the safetensors header
    (the JSON after the 8-byte length: dtypes, shapes, data offsets, metadata), the tensor bytes kept.
    `prefix` bytes before the file (a target's selector) are kept as they are."""
    rng = random.Random(seed)
    head, body = data[:prefix], data[prefix:]
    if rng.random() < 0.5 or len(body) < 8:
        return atheris.Mutate(data, max_size)
    length = int.from_bytes(body[:8], "little")
    try:
        header = json.loads(body[8 : 8 + length])
        if rng.random() < 0.3 and isinstance(header.get("__metadata__"), dict):
            meta = header["__metadata__"]
            key = rng.choice(sorted(meta))
            inner = json.loads(meta[key])
            meta[key] = mutate_json(inner, rng)
            text = json.dumps(header)
        else:
            text = mutate_json(header, rng)
    except (ValueError, RecursionError, TypeError, KeyError, IndexError, AttributeError):
        return atheris.Mutate(data, max_size)
    encoded = text.encode("utf-8", "surrogatepass")
    return (head + len(encoded).to_bytes(8, "little") + encoded + body[8 + length :])[:max_size]


def run(test_one: Callable[[bytes], None], *, structured: bool = True, mutator: Callable | None = None) -> None:
    """Start libFuzzer on `test_one` with the command line's options (see fuzz/run.sh)."""
    atheris.Setup(sys.argv, test_one, custom_mutator=mutator or (json_mutator if structured else None))
    atheris.Fuzz()
