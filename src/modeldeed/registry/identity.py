"""A submitter's identity: an Ed25519 key pair in a directory, and what it signs.

    ID/identity.key    modeldeed.registry-identity-key: the private key (32-byte seed, hex); mode 0600
    ID/identity.json   modeldeed.registry-identity: the public key (hex) and its fingerprint; shareable

The private key comes from `secrets` (the OS CSPRNG) and is used through `cryptography`'s Ed25519. A judge
or an allow-list names a submitter by the public key; the fingerprint is a short form for people.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import ModeldeedError, file_error
from ..files import canonical_json, write_bytes_atomic
from ..schema import Document, Hex64, load_document
from .entry import Submission, submission_message

PRIVATE_FILE = "identity.key"
PUBLIC_FILE = "identity.json"
_MAX_BYTES = 4096


def fingerprint(public_key_hex: str) -> str:
    """A short, collision-resistant name for a public key: the first 16 bytes of its SHA-256, hex."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:32]


class IdentityKeyFile(Document):
    format: Literal["modeldeed.registry-identity-key"]
    version: Literal[1]
    private_key: Hex64
    public_key: Hex64


class IdentityFile(Document):
    format: Literal["modeldeed.registry-identity"]
    version: Literal[1]
    public_key: Hex64
    fingerprint: str


@dataclass(frozen=True)
class Identity:
    """A submitter's private key; signs submissions for the log."""

    seed: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls(secrets.token_bytes(32))

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> str:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def __repr__(self) -> str:  # never print the seed by accident
        return f"Identity(fingerprint={self.fingerprint})"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def submission(self, kind: str, digest_hex: str) -> Submission:
        """A signed request to register the artefact with SHA-256 `digest_hex` as `kind`."""
        signature = self.sign(submission_message(kind, bytes.fromhex(digest_hex)))
        return Submission(kind=kind, digest=digest_hex, submitter_key=self.public_key, signature=signature.hex())


def save_identity(directory: str | Path, identity: Identity, *, force: bool = False) -> Path:
    """Write ID/identity.key (0600) and ID/identity.json; refuse to overwrite an existing key unless forced."""
    directory = Path(directory)
    private_path = directory / PRIVATE_FILE
    if private_path.exists() and not force:
        raise file_error(ModeldeedError, private_path, "already exists (pass --force to replace this identity)")
    directory.mkdir(parents=True, exist_ok=True)
    private = {"format": "modeldeed.registry-identity-key", "version": 1, "private_key": identity.seed.hex(),
               "public_key": identity.public_key}  # fmt: skip
    write_bytes_atomic(private_path, canonical_json(private) + b"\n")  # a temporary file is created 0600
    os.chmod(private_path, 0o600)
    public = {"format": "modeldeed.registry-identity", "version": 1, "public_key": identity.public_key,
              "fingerprint": identity.fingerprint}  # fmt: skip
    write_bytes_atomic(directory / PUBLIC_FILE, canonical_json(public) + b"\n")
    os.chmod(directory / PUBLIC_FILE, 0o644)
    return directory


def load_identity(directory: str | Path) -> Identity:
    """The private identity in ID/ (its public half is checked against the key it was saved with)."""
    path = Path(directory) / PRIVATE_FILE
    document = load_document(IdentityKeyFile, path, within=directory, max_bytes=_MAX_BYTES)
    identity = Identity(bytes.fromhex(document.private_key))
    if identity.public_key != document.public_key:
        raise file_error(ModeldeedError, path, "the public key does not belong to the private key (edited file?)")
    return identity


def load_public_identity(path: str | Path) -> str:
    """The public key (hex) of an identity.json, or of the identity.json inside a directory."""
    path = Path(path)
    if path.is_dir():
        path = path / PUBLIC_FILE
    document = load_document(IdentityFile, path, max_bytes=_MAX_BYTES)
    if document.fingerprint != fingerprint(document.public_key):
        raise file_error(ModeldeedError, path, "the fingerprint does not match the public key")
    return document.public_key


class AllowListFile(Document):
    """The submitters a private log accepts (`registry serve --allow FILE`): public keys, hex."""

    format: Literal["modeldeed.registry-allow-list"]
    version: Literal[1]
    keys: list[Hex64]


def load_allow_list(path: str | Path) -> frozenset[str]:
    return frozenset(load_document(AllowListFile, path, max_bytes=4 << 20).keys)
