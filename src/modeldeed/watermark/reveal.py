"""Bounded public verification (Adi et al. 2018, Section 4.1): reveal one trigger set per verification, once.

A bounded key holds several disjoint trigger sets, all embedded. Each public verification opens one unused set
(its images, labels and nonces) in a reveal, which anyone checks against the public key and the model. Once
revealed, a set is public: anyone can fit a model to it. So a reveal is an artefact that says which set and
when, with an id (the SHA-256 of its canonical JSON, which covers the images' file digest) that can be
registered on the transparency log; the owner's key directory records every reveal in `usage.json`, and
`reveal` refuses a set that was revealed before. A verification counts only if the evidence does not show
the set public before this reveal, or before the model was first seen. What a verifier can and cannot know
without a registry is in docs/watermark.md.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..data import Dataset
from ..errors import FormatError, ModeldeedError, file_error
from ..files import (
    canonical_json,
    parse_safetensors_bytes,
    read_regular_file,
    safetensors_bound,
    write_bytes_atomic,
    write_json_atomic,
)
from .documents import (
    REVEAL_FORMAT,
    USAGE_FORMAT,
    RevealDocument,
    UsageDocument,
    UsageEntry,
    build_document,
    format_time,
    parse_time,
    read_document,
)
from .keys import (
    Opening,
    VerificationKey,
    checked_images,
    key_path,
    load_marking_key,
    load_verification_key,
    opening_of,
)
from .limits import check_trigger_budget
from .verify import WatermarkVerdict, judge, key_pair_problems

log = logging.getLogger(__name__)

REVEAL_FILE, REVEAL_TENSORS, USAGE_FILE = "reveal.json", "reveal.safetensors", "usage.json"


@dataclass(frozen=True, eq=False)
class RevealedSet:
    """One trigger set of a bounded key, opened for one public verification."""

    key_id: str
    set_index: int
    opening: Opening
    created: str  # UTC time of the reveal, `YYYY-MM-DDTHH:MM:SSZ` (its maker's word, unless registered)

    def tensor_bytes(self) -> bytes:
        """The exact bytes of reveal.safetensors."""
        return safetensors_bytes({"images": self.opening.images.detach().cpu().contiguous()}, {"format": REVEAL_FORMAT})

    @functools.cached_property
    def images_sha256(self) -> str:
        return hashlib.sha256(self.tensor_bytes()).hexdigest()

    @functools.cached_property
    def document(self) -> RevealDocument:
        return build_document(
            RevealDocument,
            {
                "format": REVEAL_FORMAT,
                "version": 2,
                "key_id": self.key_id,
                "set": self.set_index,
                "created": self.created,
                **self.opening.to_json(),
                "images_sha256": self.images_sha256,
            },
        )

    def canonical_bytes(self) -> bytes:
        """reveal.json as written: canonical JSON of the validated document."""
        return canonical_json(self.document.model_dump())

    @property
    def reveal_id(self) -> str:
        """SHA-256 of the canonical reveal.json (for a file written by modeldeed, `sha256sum reveal.json`)."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()


def save_reveal(directory: str | Path, reveal: RevealedSet) -> Path:
    """Write reveal.safetensors, then reveal.json (canonical JSON; its SHA-256 is the reveal id)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / REVEAL_TENSORS, reveal.tensor_bytes())
    write_bytes_atomic(directory / REVEAL_FILE, reveal.canonical_bytes())
    return directory


def load_reveal(path: str | Path, verification_key: VerificationKey) -> RevealedSet:
    """A revealed set (its directory or reveal.json), checked against the shape of `verification_key`.

    The images file is bounded by the size the indices imply, and must have the digest reveal.json names.
    """
    vk = verification_key
    json_path, directory = key_path(path, REVEAL_FILE)
    doc = read_document(RevealDocument, json_path, within=directory)
    if doc.indices and doc.indices[-1] >= vk.size:
        raise file_error(FormatError, json_path, f"field 'indices': {doc.indices[-1]} is not a trigger of this key")
    tensor_path = directory / REVEAL_TENSORS
    count = len(doc.indices)
    try:
        need = check_trigger_budget(count, vk.input_shape) if count else 0
    except ModeldeedError as exc:
        raise file_error(FormatError, tensor_path, str(exc)) from None
    data = read_regular_file(tensor_path, max_bytes=safetensors_bound(need), within=directory)
    if hashlib.sha256(data).hexdigest() != doc.images_sha256:
        raise file_error(FormatError, tensor_path, "does not have the SHA-256 that reveal.json names (changed?)")
    images = checked_images(parse_safetensors_bytes(data, tensor_path), tensor_path, "images", count, vk.input_shape)
    return RevealedSet(doc.key_id, doc.set, opening_of(doc, images), doc.created)


def load_usage(key_dir: str | Path, verification_key: VerificationKey) -> list[UsageEntry]:
    """The owner's record of revealed sets in a key directory (empty if none were revealed yet)."""
    path = Path(key_dir) / USAGE_FILE
    if not path.exists() and not path.is_symlink():
        return []
    doc = read_document(UsageDocument, path, within=Path(key_dir))
    if doc.key_id != verification_key.key_id or doc.sets != verification_key.sets:
        raise file_error(FormatError, path, "belongs to another key (key id or number of sets differ)")
    return list(doc.revealed)


def _write_usage(key_dir: Path, vk: VerificationKey, entries: list[UsageEntry]) -> None:
    fields = {"format": USAGE_FORMAT, "version": 2, "key_id": vk.key_id, "sets": vk.sets, "revealed": []}
    doc = build_document(UsageDocument, {**fields, "revealed": [e.model_dump() for e in entries]})
    write_json_atomic(key_dir / USAGE_FILE, doc.model_dump())


def reveal_set(
    key_dir: str | Path, out_dir: str | Path, *, set_index: int | None = None, note: str = ""
) -> RevealedSet:
    """Open one unused set of a bounded key (the next one, or `set_index`) into `out_dir`.

    A set that was revealed before is refused: once public it proves nothing new. The record is written
    to usage.json before the reveal, so an interruption can waste a set but never reuse one.
    """
    key_dir, out = Path(key_dir), Path(out_dir)
    mk, vk = load_marking_key(key_dir), load_verification_key(key_dir)
    if vk.scheme != "bounded":
        raise ModeldeedError(f"only a bounded key has sets to reveal; this is a {vk.scheme} key")
    problems = key_pair_problems(mk, vk)
    if problems:
        raise ModeldeedError(f"{key_dir}: {problems[0]}")
    if (out / REVEAL_FILE).exists():
        raise ModeldeedError(f"{out}: already holds a reveal; choose another directory (reveals are evidence)")
    used = load_usage(key_dir, vk)
    taken = {entry.set: entry for entry in used}
    if set_index is None:
        free = [j for j in range(vk.sets) if j not in taken]
        if not free:
            raise ModeldeedError(
                f"{key_dir}: all {vk.sets} trigger sets have been revealed; this key allows no further public "
                "verification"
            )
        set_index = free[0]
    elif not 0 <= set_index < vk.sets:
        raise ModeldeedError(f"set {set_index} does not exist; the key has sets 0..{vk.sets - 1}")
    elif set_index in taken:
        raise ModeldeedError(
            f"{key_dir}: set {set_index} was revealed at {taken[set_index].time} (reveal "
            f"{taken[set_index].reveal_id[:16]}…); a revealed set is public and does not count again"
        )
    now = format_time(datetime.now(timezone.utc))
    reveal = RevealedSet(vk.key_id, set_index, mk.opening(list(vk.set_indices(set_index))), now)
    entry = UsageEntry(set=set_index, time=now, reveal_id=reveal.reveal_id, note=note, out=str(out))
    _write_usage(key_dir, vk, [*used, entry])
    save_reveal(out, reveal)
    log.info("revealed set %d of %d (%s); %d left", set_index, vk.sets, reveal.reveal_id[:16], vk.sets - len(used) - 1)
    return reveal


def reveal_next_set(key_dir: str | Path, out_dir: str | Path, *, note: str = "") -> RevealedSet:
    """The next unused set (see `reveal_set`)."""
    return reveal_set(key_dir, out_dir, note=note)


@dataclass(frozen=True)
class RevealRecord:
    """Evidence that a set was revealed: which set, when, by which reveal, and where the verifier saw it."""

    set_index: int
    time: str
    reveal_id: str
    source: str


def reveal_history(
    verification_key: VerificationKey, *, usage: Sequence[UsageEntry] = (), reveals: Sequence[RevealedSet] = ()
) -> list[RevealRecord]:
    """Records from the owner's usage record and from other reveals the verifier holds, for this key."""
    records = [RevealRecord(e.set, e.time, e.reveal_id, "the owner's usage record") for e in usage]
    for other in reveals:
        if other.key_id != verification_key.key_id:
            raise ModeldeedError(f"reveal {other.reveal_id[:16]}… belongs to another key ({other.key_id[:16]}…)")
        records.append(RevealRecord(other.set_index, other.created, other.reveal_id, f"reveal {other.reveal_id[:16]}…"))
    return records


def parse_moment(text: str) -> datetime:
    """A time the user gives: `YYYY-MM-DD` (midnight UTC) or ISO 8601 with a zone (`...T12:00:00Z`)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ModeldeedError(f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ)") from None
    if moment.tzinfo is None:
        raise ModeldeedError(f"{text!r} has no time zone; add one (e.g. Z for UTC)")
    return moment.astimezone(timezone.utc)


FUTURE_SKEW = timedelta(minutes=10)  # clocks differ; a reveal dated further ahead than this is plainly false


def reveal_timing(
    reveal: RevealedSet,
    history: Sequence[RevealRecord],
    first_seen: datetime | None,
    *,
    now: datetime | None = None,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Does this reveal count? (reasons it does not, notes, metrics) from the evidence the verifier has.

    The set is public from its earliest known reveal. A reveal counts only if no other reveal of the set
    came before it, and, when the model's first appearance is known, only if the model was seen before the
    set was public. A reveal's own date is its maker's word: it is believed when it tells against the claim,
    and a date in the future (which would let it count for models that appeared after it) is refused.
    """
    own = parse_time(reveal.created)
    now = now or datetime.now(timezone.utc)
    others = sorted(
        (parse_time(r.time), r) for r in history if r.set_index == reveal.set_index and r.reveal_id != reveal.reveal_id
    )
    public_from, public_source = own, "this reveal's own date"
    problems, notes = [], []
    if own > now + FUTURE_SKEW:
        problems.append(
            f"the reveal is dated {reveal.created}, in the future: a reveal dated later than it was made could "
            "count for models that appeared after the set was public; it does not count"
        )
    if others and others[0][0] <= own:
        when, record = others[0]
        public_from, public_source = when, record.source
        problems.append(
            f"set {reveal.set_index} had been revealed before this reveal ({record.time}, {record.source}): a set "
            "is public from its first reveal, so anyone could have fitted a model to it; it does not count again"
        )
    elif others:
        notes.append(
            f"set {reveal.set_index} was revealed again later ({others[0][1].time}, {others[0][1].source}); only "
            "this, the earliest known reveal, counts"
        )
    if first_seen is not None and not first_seen < public_from:
        problems.append(
            f"set {reveal.set_index} was public from {format_time(public_from)} ({public_source}), and the model was "
            f"first seen at {format_time(first_seen)}, not before: anyone could have fitted the model to the "
            "revealed set; it does not count"
        )
    if first_seen is None:
        notes.append(
            f"whether the model existed before set {reveal.set_index} was revealed ({reveal.created}, the reveal's "
            "own date) is not known from these files: give the model's first appearance (--first-seen) or a "
            "registration of it"
        )
    metrics = {
        "reveal_id": reveal.reveal_id,
        "revealed_at": format_time(public_from),
        "first_seen": format_time(first_seen) if first_seen is not None else None,
        "counts": not problems,
    }
    return problems, notes, metrics


def verify_revealed_set(
    verification_key: VerificationKey,
    reveal: RevealedSet,
    model: nn.Module,
    *,
    data: Sequence[Dataset] = (),
    reference_model: nn.Module | None = None,
    test_data: Dataset | None = None,
    epsilon: float | None = None,
    history: Sequence[RevealRecord] = (),
    first_seen: datetime | None = None,
    registered: str | None = None,
) -> WatermarkVerdict:
    """Bounded PVerify: the revealed set belongs to this key, is exactly one set, opens (with the labels its
    image commitments dictate, for a derived key), is no real data, was not public before, and the model knows it.
    """
    vk = verification_key
    problems = []
    if reveal.key_id != vk.key_id:
        problems.append(f"the revealed set belongs to key {reveal.key_id[:16]}…, not to {vk.key_id[:16]}…")
    if not 0 <= reveal.set_index < vk.sets:
        raise ModeldeedError(f"set {reveal.set_index} does not exist; the key has sets 0..{vk.sets - 1}")
    expected = vk.set_indices(reveal.set_index)
    if reveal.opening.indices != tuple(expected):
        problems.append(
            f"the revealed triggers are not exactly set {reveal.set_index} "
            f"(indices {expected.start}..{expected.stop - 1})"
        )
    timing, notes, metrics = reveal_timing(reveal, history, first_seen)
    metrics = {"set": reveal.set_index, "sets": vk.sets, **metrics}
    return judge(
        vk,
        reveal.opening,
        model,
        epsilon=epsilon,
        test_data=test_data,
        reasons=[*problems, *timing],
        metrics=metrics,
        data=data,
        reference_model=reference_model,
        notes=notes,
        registered=registered,
    )
