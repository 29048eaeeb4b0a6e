"""C2SP signed notes (c2sp.org/signed-note): a text, a blank line, and signature lines; Ed25519 keys.

    <text ending in "\\n">
    "\\n"
    "— <key name> <base64(key ID (4 bytes, big-endian) ‖ signature)>\\n"   (one or more)

    key ID        = SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]
    verifier key  = <name>+<key ID, 8 hex digits>+<base64(signature type ‖ public key)>
    signer key    = PRIVATE+KEY+<name>+<key ID>+<base64(signature type ‖ 32-byte Ed25519 seed)>

Signature types: 0x01 Ed25519 over the note text; 0x04 a timestamped witness cosignature
(c2sp.org/tlog-cosignature: Ed25519 over "cosignature/v1\\ntime <t>\\n" ‖ text, carried as u64be(t) ‖ sig).

Verification follows the spec: a signature line whose (name, key ID) matches no trusted key is ignored; one
that matches a trusted key must verify, else the whole note is rejected; a note with no verified trusted
signature is rejected. Ed25519 comes from `cryptography`; nothing here is hand-written cryptography.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import FormatError

SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
MAX_NOTE_BYTES = 64 << 10
MAX_SIGNATURES = 32  # the spec asks verifiers to accept at least 16
EM_DASH = "\u2014"
_NAME = re.compile(r"[^\s+]{1,255}")
_SIG_LINE = re.compile(r"\u2014 (\S+) (\S+)")
_COSIGN_HEADER = "cosignature/v1\n"


class NoteError(FormatError):
    """A note, key or signature line that does not follow the signed-note format, or does not verify."""


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.isprintable():
        raise NoteError(f"key name {name[:80]!r} must be 1-255 printable characters with no spaces and no '+'")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise NoteError(f"{what} is not standard base64") from None
    if base64.b64encode(data).decode() != text:
        raise NoteError(f"{what} is not in canonical base64")
    return data


@dataclass(frozen=True)
class Signature:
    """One signature line: the key name, its 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{EM_DASH} {self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class VerifierKey:
    """A public key that a note's reader trusts: Ed25519 (0x01) for a log, 0x04 for a witness."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def __str__(self) -> str:
        data = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2) if isinstance(text, str) else []  # base64 may hold '+'
        if len(parts) != 3:
            raise NoteError("a verifier key reads <name>+<8 hex digits>+<base64 key>")
        name, hash_hex, data = parts
        check_key_name(name)
        raw = _b64decode(data, "the verifier key's key data")
        if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE):
            raise NoteError("the verifier key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
        key = cls(name, raw[0], raw[1:])
        if hash_hex != key.key_id.hex():
            raise NoteError(f"the verifier key's key ID {hash_hex[:16]!r} does not match its name and key")
        return key

    def matches(self, signature: Signature) -> bool:
        return signature.name == self.name and signature.key_id == self.key_id

    def verify(self, text: str, signature: Signature) -> bool:
        """True iff `signature` (already matched by name and key ID) is this key's signature over `text`."""
        try:
            public = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            return False
        if self.sig_type == SIG_ED25519:
            message, sig = text.encode(), signature.signature
        else:
            if len(signature.signature) != 8 + 64:
                return False
            timestamp = int.from_bytes(signature.signature[:8], "big")
            if timestamp > 2**63 - 1:
                return False
            message, sig = cosigned_message(text, timestamp), signature.signature[8:]
        if len(sig) != 64:
            return False
        try:
            public.verify(sig, message)
        except InvalidSignature:
            return False
        return True


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"{_COSIGN_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class SignerKey:
    """A private Ed25519 key with its name, able to sign notes (0x01) or to cosign checkpoints (0x04)."""

    name: str
    sig_type: int
    seed: bytes

    @classmethod
    def generate(cls, name: str, sig_type: int = SIG_ED25519) -> SignerKey:
        """A new key from the operating system's CSPRNG (`secrets`)."""
        if sig_type not in (SIG_ED25519, SIG_COSIGNATURE):
            raise NoteError(f"unsupported signature type {sig_type}")
        return cls(check_key_name(name), sig_type, secrets.token_bytes(32))

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier(self) -> VerifierKey:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifierKey(self.name, self.sig_type, public)

    def __str__(self) -> str:
        data = base64.b64encode(bytes([self.sig_type]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{data}"

    def __repr__(self) -> str:  # never print the seed by accident
        return f"SignerKey(name={self.name!r}, sig_type={self.sig_type})"

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        parts = text.strip().split("+", 4) if isinstance(text, str) else []
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key reads PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        name, hash_hex, data = parts[2:]
        check_key_name(name)
        raw = _b64decode(data, "the signer key's key data")
        if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE):
            raise NoteError("the signer key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
        key = cls(name, raw[0], raw[1:])
        if hash_hex != key.verifier().key_id.hex():
            raise NoteError("the signer key's key ID does not match its name and key")
        return key

    def sign(self, text: str, timestamp: int | None = None) -> Signature:
        if self.sig_type == SIG_ED25519:
            return Signature(self.name, self.verifier().key_id, self._private.sign(text.encode()))
        if timestamp is None or not 0 <= timestamp <= 2**63 - 1:
            raise NoteError("a cosignature needs a POSIX timestamp from 0 to 2^63 - 1")
        sig = self._private.sign(cosigned_message(text, timestamp))
        return Signature(self.name, self.verifier().key_id, timestamp.to_bytes(8, "big") + sig)


@dataclass(frozen=True)
class Note:
    """A note text (ending in a newline) and its signature lines, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Split a signed note into text and signature lines, refusing anything the spec does not allow."""
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > MAX_NOTE_BYTES:
            raise NoteError(f"the note is {len(raw)} bytes, more than the {MAX_NOTE_BYTES} allowed")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("the note is not UTF-8") from None
        if any(ord(c) < 0x20 and c != "\n" for c in text) or "\x7f" in text:
            raise NoteError("the note holds a control character other than newline")
        if not text.endswith("\n"):
            raise NoteError("the note does not end in a newline (truncated?)")
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteError("the note has no blank line before its signatures")
        body, lines = text[: split + 1], text[split + 2 :].splitlines()
        if not lines:
            raise NoteError("the note has no signature lines")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"the note has {len(lines)} signature lines, more than the {MAX_SIGNATURES} allowed")
        signatures = []
        for number, line in enumerate(lines, 1):
            match = _SIG_LINE.fullmatch(line)
            if not match:
                raise NoteError(f"signature line {number} does not read '— <name> <base64>'")
            name = check_key_name(match.group(1))
            blob = _b64decode(match.group(2), f"signature line {number}")
            if len(blob) < 5:
                raise NoteError(f"signature line {number} is too short to hold a key ID and a signature")
            signatures.append(Signature(name, blob[:4], blob[4:]))
        return cls(body, tuple(signatures))

    def verified_by(self, keys: list[VerifierKey] | tuple[VerifierKey, ...]) -> list[VerifierKey]:
        """The trusted keys that signed this note. Raises NoteError if a trusted key's signature is bad,
        or if no trusted key signed it."""
        verified = []
        for signature in self.signatures:
            for key in keys:
                if key.matches(signature):
                    if not key.verify(self.text, signature):
                        raise NoteError(f"the signature by {key.name} does not verify (edited or forged note)")
                    if key not in verified:
                        verified.append(key)
        if not verified:
            names = ", ".join(sorted({s.name for s in self.signatures}))[:200]
            raise NoteError(f"no signature by a trusted key (signed by: {names})")
        return verified


def sign_note(text: str, signer: SignerKey) -> Note:
    if not text.endswith("\n"):
        raise NoteError("a note text ends in a newline")
    return Note(text, (signer.sign(text),))
