"""Hypothesis strategies that make hostile variants of valid documents (for tests/test_fuzz_properties.py).

A mutation picks one node of a valid JSON document and deletes it, duplicates its key, puts a value of
another type, an extreme number, a long string, deep nesting, a lone surrogate or a NaN token in its
place, or truncates or repeats a list. Starting from valid documents reaches the validators behind the
parser, which random bytes rarely do.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

EXTREME_NUMBERS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40, 1e308, -0.0]
ODD_VALUES = [None, True, False, "", "x" * 3000, [], {}, [[]], {"": None}, 0.5, "../../etc/passwd", "\u00e9"]
TOKENS = ['"\\ud800"', '"\\udfff"', "NaN", "Infinity", "-Infinity", "1e999", "[" * 100 + "]" * 100]

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc[:20]):
            out.extend(paths(value, (*prefix, index)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, original: Any, *, rounds: int = 3) -> bytes:
    """The bytes of `original` after 1..`rounds` structural mutations."""
    doc = copy.deepcopy(original)
    text: str | None = None
    for _ in range(draw(st.integers(1, rounds))):
        path = draw(st.sampled_from(paths(doc)))
        target = _get(doc, path)
        op = draw(st.integers(0, 8))
        if op == 0 and path:
            del _get(doc, path[:-1])[path[-1]]
        elif op == 1:
            doc = _set(doc, path, draw(st.sampled_from(EXTREME_NUMBERS)))
        elif op == 2:
            doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(ODD_VALUES))))
        elif op == 3:
            doc = _set(doc, path, draw(json_values))
        elif op == 4 and isinstance(target, list) and target:
            cut = draw(st.integers(0, len(target)))
            doc = _set(doc, path, target[:cut] if draw(st.booleans()) else target + target[:cut])
        elif op == 5 and isinstance(target, (int, float)) and not isinstance(target, bool):
            doc = _set(doc, path, target * draw(st.sampled_from([-1, 2, 10**6, 2**40])) + draw(st.integers(-2, 2)))
        elif op == 6 and isinstance(target, str):
            doc = _set(
                doc, path, target[: draw(st.integers(0, len(target)))] + draw(st.sampled_from(["", "A", "/", "\x00"]))
            )
        elif op == 7 and isinstance(target, dict) and target:  # a key twice: only expressible as text
            key = draw(st.sampled_from(sorted(target)))
            member = json.dumps({key: target[key]})[1:-1]
            text = json.dumps(doc).replace(member, f"{member}, {member}", 1)
            break
        elif op == 8:
            token = draw(st.sampled_from(TOKENS))
            text = json.dumps(doc).replace(json.dumps(target), token, 1) if path else token
            break
    if text is None:
        text = json.dumps(doc)
    return text.encode("utf-8", "surrogatepass")
