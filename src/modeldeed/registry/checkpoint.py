"""Checkpoints (c2sp.org/tlog-checkpoint): the signed head of the log at one tree size.

    <origin>\\n                     the log's name, equal to its key name
    <tree size>\\n                  ASCII decimal, no leading zeros
    <base64 of the RFC 6962 root>\\n

modeldeed's log writes no extension lines and refuses checkpoints that have any. With deterministic
Ed25519 signatures that makes the signed checkpoint a function of (log key, tree): for a given log key
there is exactly one valid signed checkpoint per tree size, which is what lets a receipt's checkpoint serve
as an unpredictable, ungrindable beacon (see receipt.registration_beacon) and lets two checkpoints of one
size with different roots stand as proof that the log equivocated.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import StringConstraints

from ..schema import Document, load_document
from .merkle import HASH_SIZE, MAX_TREE_SIZE
from .note import MAX_NOTE_BYTES, Note, NoteError, SignerKey, VerifierKey, check_key_name

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")

NoteText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NOTE_BYTES)]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a tree size and a root hash, each on its own line")
        if len(lines) > 4:
            raise NoteError("the checkpoint has extension lines, which this log never signs")
        origin, size_text, root_text = lines[:3]
        check_key_name(origin)
        if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint's tree size {size_text[:30]!r} is not a decimal from 0 to 2^63 - 1")
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise NoteError("the checkpoint's root hash is not base64") from None
        if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_text:
            raise NoteError("the checkpoint's root hash is not the canonical base64 of 32 bytes")
        return cls(origin, int(size_text), root)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the exact bytes of its signed note (what a beacon hashes, what is served)."""

    checkpoint: Checkpoint
    note: bytes

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def sign_checkpoint(checkpoint: Checkpoint, signer: SignerKey) -> SignedCheckpoint:
    if checkpoint.origin != signer.name:
        raise NoteError(f"the log key is named {signer.name!r}, the checkpoint's origin is {checkpoint.origin!r}")
    text = checkpoint.body()
    return SignedCheckpoint(checkpoint, Note(text, (signer.sign(text),)).encode())


def open_checkpoint(note: bytes | str, log_key: VerifierKey, witnesses: tuple[VerifierKey, ...] = ()) -> Checkpoint:
    """Parse a signed checkpoint and check the log's signature (and any listed witnesses' cosignatures).

    Raises NoteError with the reason: malformed, not signed by `log_key`, origin not the log's name, or a
    signature by the log or a listed witness that does not verify.
    """
    parsed = Note.parse(note)
    checkpoint = Checkpoint.parse_body(parsed.text)
    if checkpoint.origin != log_key.name:
        raise NoteError(f"the checkpoint is for the log {checkpoint.origin!r}, not {log_key.name!r}")
    if log_key not in parsed.verified_by([log_key]):
        raise NoteError("the checkpoint is not signed by the log's key")
    for witness in witnesses:
        parsed.verified_by([witness])
    return checkpoint


class CheckpointDocument(Document):
    """A signed checkpoint saved to a file (what `registry audit --since` reads) or served as JSON."""

    format: Literal["modeldeed.registry-checkpoint"]
    version: Literal[1]
    note: NoteText

    @classmethod
    def of(cls, signed: SignedCheckpoint | bytes) -> CheckpointDocument:
        note = signed.note if isinstance(signed, SignedCheckpoint) else signed
        return cls(format="modeldeed.registry-checkpoint", version=1, note=note.decode())


def load_checkpoint_document(path: str | Path) -> CheckpointDocument:
    return load_document(CheckpointDocument, path, max_bytes=2 * MAX_NOTE_BYTES)
