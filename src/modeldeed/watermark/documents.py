"""The watermark's JSON formats as declared models: verification key, marking key, revealed set, usage record.

Why declared: a verifier opens keys and reveals that an adversary wrote, and each key's id is a digest of its
fields, so nothing may ride along unhashed and every number must be in range before it is used to allocate or
index anything. `modeldeed.schema.Document` refuses unknown fields, NaN and loose types; the types below bound
every count (see `limits`), and `cross_check` then checks what one field says about another (lengths, sets,
labels below the class count). Byte layouts and meanings: docs/formats.md.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, StringConstraints

from ..errors import FormatError, file_error
from ..schema import Document, Hex64, Name, validate_document
from .limits import MAX_CLASSES, MAX_INPUT_DIM, MAX_SECURITY_BITS, MAX_SEED, MAX_TRIGGERS

VK_FORMAT = "modeldeed.watermark.verification-key"
MK_FORMAT = "modeldeed.watermark.marking-key"
REVEAL_FORMAT = "modeldeed.watermark.reveal"
USAGE_FORMAT = "modeldeed.watermark.usage"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

Scheme = Literal["private", "cut-and-choose", "bounded"]
Source = Literal["abstract", "images"]
LabelKind = Literal["derived", "chosen"]


def _real_time(text: str) -> str:
    datetime.strptime(text, TIME_FORMAT)  # a ValueError (e.g. month 13) becomes a field error
    return text


def parse_time(text: str) -> datetime:
    """A `YYYY-MM-DDTHH:MM:SSZ` time as an aware UTC datetime."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


Timestamp = Annotated[
    str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"), AfterValidator(_real_time)
]
Dimension = Annotated[int, Field(ge=1, le=MAX_INPUT_DIM)]
TriggerCount = Annotated[int, Field(ge=1, le=MAX_TRIGGERS)]
Index = Annotated[int, Field(ge=0, le=MAX_TRIGGERS - 1)]
Label = Annotated[int, Field(ge=0, le=MAX_CLASSES - 1)]
Hexes = Annotated[list[Hex64], Field(max_length=MAX_TRIGGERS)]
Challenge = Annotated[str, StringConstraints(pattern=r"^[01]+$", max_length=MAX_TRIGGERS)]
Note = Annotated[str, StringConstraints(max_length=1000)]
Out = Annotated[str, StringConstraints(max_length=4096)]


class CommitmentScheme(Document):
    hash: Literal["sha256"]
    nonce_bytes: Literal[32]


# A key made for zero-knowledge verification (modeldeed.zk) also commits to every trigger with Poseidon over the
# Pasta field: decimal field elements, which the key id covers like every other field.
ZK_HASH = "poseidon-kimchi-pasta-fp"
FieldElement = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,76})$")]


class ZkCommitments(Document):
    hash: Literal["poseidon-kimchi-pasta-fp"]
    commitments: Annotated[list[FieldElement], Field(max_length=MAX_TRIGGERS)]


class OpeningDocument(Document):
    """Trigger elements with what opens their commitments (the opened half of a cut-and-choose key)."""

    indices: Annotated[list[Index], Field(max_length=MAX_TRIGGERS)]
    labels: Annotated[list[Label], Field(max_length=MAX_TRIGGERS)]
    image_nonces: Hexes
    label_nonces: Hexes


class VerificationKeyDocument(Document):
    format: Literal["modeldeed.watermark.verification-key"]
    version: Literal[2]
    modeldeed_version: Name
    scheme: Scheme
    classes: Annotated[list[Name], Field(min_length=2, max_length=MAX_CLASSES)]
    input_shape: Annotated[list[Dimension], Field(min_length=3, max_length=3)]
    epsilon: Annotated[float, Field(ge=0.0, lt=1.0)]
    size: TriggerCount
    sets: TriggerCount
    created: Timestamp
    trigger_source: Source
    labels: LabelKind
    demonstration_seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    commitment: CommitmentScheme
    image_commitments: Hexes
    label_commitments: Hexes
    security_bits: Annotated[int, Field(ge=1, le=MAX_SECURITY_BITS)] | None = None
    opened: OpeningDocument | None = None
    zk: ZkCommitments | None = None  # cut-and-choose keys made by `watermark zk-keygen` only


class MarkingKeyDocument(Document):
    format: Literal["modeldeed.watermark.marking-key"]
    version: Literal[2]
    modeldeed_version: Name
    key_id: Hex64
    scheme: Scheme
    classes: Annotated[list[Name], Field(min_length=2, max_length=MAX_CLASSES)]
    input_shape: Annotated[list[Dimension], Field(min_length=3, max_length=3)]
    size: TriggerCount
    sets: TriggerCount
    trigger_source: Source
    labels: Annotated[list[Label], Field(max_length=MAX_TRIGGERS)]
    image_nonces: Hexes
    label_nonces: Hexes
    challenge: Challenge | None = None


class RevealDocument(Document):
    format: Literal["modeldeed.watermark.reveal"]
    version: Literal[2]
    key_id: Hex64
    set: Index
    created: Timestamp
    indices: Annotated[list[Index], Field(max_length=MAX_TRIGGERS)]
    labels: Annotated[list[Label], Field(max_length=MAX_TRIGGERS)]
    image_nonces: Hexes
    label_nonces: Hexes
    images_sha256: Hex64  # SHA-256 of reveal.safetensors, byte for byte


class UsageEntry(Document):
    set: Index
    time: Timestamp
    reveal_id: Hex64
    note: Note
    out: Out


class UsageDocument(Document):
    format: Literal["modeldeed.watermark.usage"]
    version: Literal[2]
    key_id: Hex64
    sets: TriggerCount
    revealed: Annotated[list[UsageEntry], Field(max_length=MAX_TRIGGERS)]


def _opening_problem(opening: OpeningDocument | RevealDocument, size: int, classes: int) -> tuple[str, str] | None:
    n = len(opening.indices)
    for name in ("labels", "image_nonces", "label_nonces"):
        if len(getattr(opening, name)) != n:
            return name, f"has {len(getattr(opening, name))} entries, one per index ({n}) is needed"
    if any(b <= a for a, b in zip(opening.indices, opening.indices[1:])) or (n and opening.indices[-1] >= size):
        return "indices", f"must be strictly increasing trigger indices below {size}"
    for i, label in enumerate(opening.labels):
        if label >= classes:
            return "labels", f"entry {i} is {label}, but the key has {classes} classes"
    return None


def _sets_problem(scheme: str, size: int, sets: int) -> tuple[str, str] | None:
    if scheme == "bounded" and (sets < 2 or size % sets):
        return "sets", f"a bounded key needs at least 2 sets that divide size {size}; found {sets}"
    if scheme != "bounded" and sets != 1:
        return "sets", f"must be 1 for a {scheme} key, found {sets}"
    return None


def verification_key_problem(doc: VerificationKeyDocument, *, complete: bool = True) -> tuple[str, str] | None:
    """What one field of a verification key says against another, as (field, problem); None if consistent.

    `complete=False` accepts a cut-and-choose key whose half is not opened yet (while PKeyGen computes e).
    """
    problem = _sets_problem(doc.scheme, doc.size, doc.sets)
    if problem:
        return problem
    for name in ("image_commitments", "label_commitments"):
        if len(getattr(doc, name)) != doc.size:
            return name, f"must have {doc.size} entries (size), found {len(getattr(doc, name))}"
    if doc.zk is not None and (doc.scheme != "cut-and-choose" or len(doc.zk.commitments) != doc.size):
        return "zk", f"belongs only in a cut-and-choose key and must have {doc.size} commitments (size)"
    if doc.scheme == "cut-and-choose":
        if doc.security_bits is None:
            return "security_bits", "is missing (a cut-and-choose key needs it)"
        if doc.size != 4 * doc.security_bits:
            return "size", f"must be 4 × security_bits = {4 * doc.security_bits} (ℓ = 4n), found {doc.size}"
        if doc.opened is None:
            return None if not complete else ("opened", "is missing (a cut-and-choose key opens half of its triggers)")
        problem = _opening_problem(doc.opened, doc.size, len(doc.classes))
        return (f"opened.{problem[0]}", problem[1]) if problem else None
    for name in ("security_bits", "opened"):
        if getattr(doc, name) is not None:
            return name, f"belongs only in a cut-and-choose key, not a {doc.scheme} key"
    return None


def marking_key_problem(doc: MarkingKeyDocument) -> tuple[str, str] | None:
    problem = _sets_problem(doc.scheme, doc.size, doc.sets)
    if problem:
        return problem
    for name in ("labels", "image_nonces", "label_nonces"):
        if len(getattr(doc, name)) != doc.size:
            return name, f"must have {doc.size} entries (size), found {len(getattr(doc, name))}"
    for i, label in enumerate(doc.labels):
        if label >= len(doc.classes):
            return "labels", f"entry {i} is {label}, but the key has {len(doc.classes)} classes"
    if doc.scheme == "cut-and-choose":
        if doc.challenge is None or len(doc.challenge) != doc.size:
            return "challenge", f"must be {doc.size} characters 0/1 for a cut-and-choose key"
    elif doc.challenge is not None:
        return "challenge", f"belongs only in a cut-and-choose key, not a {doc.scheme} key"
    return None


def reveal_problem(doc: RevealDocument) -> tuple[str, str] | None:
    return _opening_problem(doc, MAX_TRIGGERS, MAX_CLASSES)


def usage_problem(doc: UsageDocument) -> tuple[str, str] | None:
    seen: set[int] = set()
    for i, entry in enumerate(doc.revealed):
        if entry.set >= doc.sets:
            return f"revealed[{i}].set", f"is {entry.set}, but the key has {doc.sets} sets"
        if entry.set in seen:
            return f"revealed[{i}].set", f"set {entry.set} is recorded twice"
        seen.add(entry.set)
    return None


CHECKS: dict[type[Document], Any] = {
    VerificationKeyDocument: verification_key_problem,
    MarkingKeyDocument: marking_key_problem,
    RevealDocument: reveal_problem,
    UsageDocument: usage_problem,
}
OLD_VERSION = {
    VK_FORMAT: "keys of version 1 had labels nobody could check; make a new key with this modeldeed",
    MK_FORMAT: "keys of version 1 had labels nobody could check; make a new key with this modeldeed",
    REVEAL_FORMAT: "reveals of version 1 carry no digest of their images; reveal the set again with this modeldeed",
    USAGE_FORMAT: "usage records of version 1 name no reveal digests; this modeldeed cannot read them",
}

D = TypeVar("D", bound=Document)


def _checked(model: type[D], obj: Any, source: str | Path, **options: Any) -> D:
    old = isinstance(obj, dict) and type(obj.get("version")) is int and obj["version"] == 1
    if old and isinstance(obj.get("format"), str) and obj["format"] in OLD_VERSION:
        raise file_error(FormatError, source, f"is version 1 of {obj['format']}: {OLD_VERSION[obj['format']]}")
    doc = validate_document(model, obj, source)
    problem = CHECKS[model](doc, **options)
    if problem:
        raise file_error(FormatError, source, f"field '{problem[0]}': {problem[1]}")
    return doc


def read_document(model: type[D], path: Path, *, within: Path) -> D:
    """Read `path` (a regular file inside `within`, bounded in size and depth) as `model`, every field checked."""
    from ..files import read_json_object

    return _checked(model, read_json_object(path, within=within), path)


def build_document(model: type[D], fields: dict[str, Any], **options: Any) -> D:
    """A document made in memory (by keygen or reveal), held to the same checks as one read from disk."""
    return _checked(model, fields, f"the new {model.__name__}", **options)
