"""The log's (and a witness's) signing key files, in the signed-note key formats wrapped as JSON documents.

    KEYFILE       modeldeed.registry-log-key:        {"signer_key": "PRIVATE+KEY+<name>+<id>+<base64>"}, 0600
    KEYFILE.pub   modeldeed.registry-log-public-key: {"verifier_key": "<name>+<id>+<base64>"}

The verifier key string is the one thing a receipt's reader must get from a trusted place (the log's
operator, a project page, a judge's instructions): with it, receipts and checkpoints verify offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import StringConstraints

from ..errors import ModeldeedError, file_error
from ..files import canonical_json, write_bytes_atomic
from ..schema import Document, load_document
from .note import SIG_COSIGNATURE, SIG_ED25519, NoteError, SignerKey, VerifierKey

K = TypeVar("K", SignerKey, VerifierKey)
KeyString = Annotated[str, StringConstraints(min_length=1, max_length=400)]
_MAX_BYTES = 4096


class LogKeyFile(Document):
    format: Literal["modeldeed.registry-log-key"]
    version: Literal[1]
    signer_key: KeyString


class LogPublicKeyFile(Document):
    format: Literal["modeldeed.registry-log-public-key"]
    version: Literal[1]
    verifier_key: KeyString


def public_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".pub")


def create_log_key(path: str | Path, origin: str, *, witness: bool = False, force: bool = False) -> SignerKey:
    """Make a new key named `origin`; write it (0600) and its public half (`path`.pub)."""
    path = Path(path)
    if path.exists() and not force:
        raise file_error(ModeldeedError, path, "already exists (pass --force to replace this key)")
    signer = SignerKey.generate(origin, SIG_COSIGNATURE if witness else SIG_ED25519)
    private = {"format": "modeldeed.registry-log-key", "version": 1, "signer_key": str(signer)}
    write_bytes_atomic(path, canonical_json(private) + b"\n")  # the temporary file is created 0600
    os.chmod(path, 0o600)
    public = {"format": "modeldeed.registry-log-public-key", "version": 1, "verifier_key": str(signer.verifier())}
    write_bytes_atomic(public_path(path), canonical_json(public) + b"\n")
    os.chmod(public_path(path), 0o644)
    return signer


def load_signer_key(path: str | Path) -> SignerKey:
    return _parsed(SignerKey.parse, load_document(LogKeyFile, path, max_bytes=_MAX_BYTES).signer_key, path)


def load_verifier_key(path: str | Path) -> VerifierKey:
    """A log's (or witness's) public key from its .pub file."""
    return _parsed(VerifierKey.parse, load_document(LogPublicKeyFile, path, max_bytes=_MAX_BYTES).verifier_key, path)


def _parsed(parse: Callable[[str], K], text: str, path: str | Path) -> K:
    try:
        return parse(text)
    except NoteError as exc:
        raise file_error(ModeldeedError, path, str(exc)) from None
