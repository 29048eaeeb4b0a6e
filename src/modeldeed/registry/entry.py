"""A log entry, the submission that asks for it, and the canonical bytes each is signed or hashed as.

A submitter signs, with its own Ed25519 key, a domain-tagged encoding of (kind, digest):

    submission message = "modeldeed/registry/submission/v1" ‖ 0x00 ‖ u8(len(kind)) ‖ kind ‖ digest (32 bytes)

so nobody can register an artefact under someone else's identity. The log adds the index, its clock's
time and the size of the checkpoint that first includes the entry, and hashes all of it into the leaf:

    leaf data = "modeldeed/registry/entry/v1" ‖ 0x00 ‖ u64be(index) ‖ u64be(integrated time, µs since
                1970-01-01T00:00:00Z) ‖ u64be(checkpoint size) ‖ u8(len(kind)) ‖ kind ‖ digest (32)
                ‖ submitter key (32) ‖ submitter signature (64)
    leaf hash = SHA-256(0x00 ‖ leaf data)                                (RFC 6962)

Because the leaf covers the time and the index, the log can never change either later without breaking
the consistency of every checkpoint it has signed since.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AfterValidator, StringConstraints, model_validator

from ..crypto import u64be
from ..schema import Document, Hex64, NonNegative, Positive
from . import merkle

Kind = Literal["watermark-key", "watermark-reveal", "pol-statement", "pol-commitment", "pol-progress", "model", "claim"]
KINDS: tuple[str, ...] = get_args(Kind)
Hex128 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]

SUBMISSION_TAG = b"modeldeed/registry/submission/v1"
LEAF_TAG = b"modeldeed/registry/entry/v1"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def format_time(moment: datetime) -> str:
    """The one text form of a log time: UTC, microseconds, 'Z' (e.g. 2025-01-02T03:04:05.000006Z)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not _TIME.fullmatch(text):
        raise ValueError("a time reads YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC, six fractional digits)")
    moment = datetime.fromisoformat(text[:-1] + "+00:00")  # the regex fixed the form; this checks the date
    if moment < EPOCH:
        raise ValueError("a time before 1970 is not a log time")
    return moment


def time_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _check_time(text: str) -> str:
    parse_time(text)
    return text


LogTime = Annotated[str, AfterValidator(_check_time)]


def submission_message(kind: str, digest: bytes) -> bytes:
    """The bytes a submitter signs: the domain tag, the kind and the artefact's SHA-256."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind[:40]!r} (one of {', '.join(KINDS)})")
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes (SHA-256)")
    return SUBMISSION_TAG + b"\x00" + bytes([len(kind)]) + kind.encode("ascii") + digest


def verify_submitter_signature(kind: str, digest_hex: str, key_hex: str, signature_hex: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        public.verify(bytes.fromhex(signature_hex), submission_message(kind, bytes.fromhex(digest_hex)))
    except (InvalidSignature, ValueError):
        return False
    return True


class Submission(Document):
    """What a client POSTs: the kind, the artefact's digest, its public key and its signature over both."""

    kind: Kind
    digest: Hex64
    submitter_key: Hex64
    signature: Hex128

    def signature_valid(self) -> bool:
        return verify_submitter_signature(self.kind, self.digest, self.submitter_key, self.signature)


class Entry(Document):
    """One registration as the log recorded it (the submission plus index, time and checkpoint size)."""

    index: NonNegative
    integrated_time: LogTime
    checkpoint_size: Positive
    kind: Kind
    digest: Hex64
    submitter_key: Hex64
    signature: Hex128

    @model_validator(mode="after")
    def _index_in_checkpoint(self) -> Entry:
        if self.index >= self.checkpoint_size:
            raise ValueError(f"index {self.index} is not inside its checkpoint of size {self.checkpoint_size}")
        return self

    @property
    def time(self) -> datetime:
        return parse_time(self.integrated_time)

    @property
    def submission(self) -> Submission:
        return Submission(
            kind=self.kind, digest=self.digest, submitter_key=self.submitter_key, signature=self.signature
        )

    def leaf_data(self) -> bytes:
        return (
            LEAF_TAG
            + b"\x00"
            + u64be(self.index)
            + u64be(time_micros(self.time))
            + u64be(self.checkpoint_size)
            + bytes([len(self.kind)])
            + self.kind.encode("ascii")
            + bytes.fromhex(self.digest)
            + bytes.fromhex(self.submitter_key)
            + bytes.fromhex(self.signature)
        )

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.leaf_data())
