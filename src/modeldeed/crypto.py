"""Commitments, Fiat-Shamir challenges and tagged digests, on the standard library alone.

Why only hashlib/secrets/hmac: a verifier must be able to re-implement every byte from
`docs/formats.md` without trusting a third-party package, and the encodings here are the whole
of what binds an owner to a trigger set. Every hash input starts with a domain tag, so a digest
made for one purpose can never be replayed as another.

Commitment (Adi et al. 2018, Section 2.4), hiding in the random-oracle model, binding by
collision resistance of SHA-256:

    Com(x, r) = SHA-256(COMMIT_TAG ‖ 0x00 ‖ u64be(len(enc(x))) ‖ enc(x) ‖ r),  r = 32 bytes from `secrets`
    Open(c, x, r) = constant-time compare(c, Com(x, r))
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

NONCE_BYTES = 32
COMMIT_TAG = b"modeldeed/commit/v1"
CHALLENGE_TAG = b"modeldeed/fiat-shamir/v1"

_DTYPE = re.compile(r"[<>|][biuf][1248]")
_MAX_U64 = 2**64 - 1


def u64be(value: int) -> bytes:
    if not 0 <= value <= _MAX_U64:
        raise ValueError(f"{value} does not fit in an unsigned 64-bit integer")
    return value.to_bytes(8, "big")


def encode_tensor(dtype: str, shape: Sequence[int], data: bytes) -> bytes:
    """Canonical bytes of an array: b"A", dtype (numpy's `dtype.str`, e.g. "<f4"), shape, raw C-order bytes.

    Layout: b"A" ‖ u8(len(dtype)) ‖ dtype ASCII ‖ u8(ndim) ‖ u64be(dim) per axis ‖ data.
    The dtype names its byte order, so the same numbers on a big-endian machine encode differently
    unless converted first; callers convert to little-endian.
    """
    if not _DTYPE.fullmatch(dtype):
        raise ValueError(f"dtype must look like '<f4' (order, kind, item size), got {dtype!r}")
    if len(shape) > 255:
        raise ValueError(f"at most 255 axes, got {len(shape)}")
    count = 1
    for dim in shape:
        if dim < 0:
            raise ValueError(f"negative axis length in shape {tuple(shape)}")
        count *= dim
    if len(data) != count * int(dtype[2]):
        raise ValueError(f"{len(data)} bytes do not hold a {dtype} array of shape {tuple(shape)}")
    header = b"A" + bytes([len(dtype)]) + dtype.encode("ascii") + bytes([len(shape)])
    return header + b"".join(u64be(int(dim)) for dim in shape) + data


def encode_label(label: int) -> bytes:
    """Canonical bytes of a class label: b"L" ‖ u64be(label)."""
    if isinstance(label, bool) or not isinstance(label, int):
        raise ValueError(f"a label must be an integer, got {type(label).__name__}")
    return b"L" + u64be(label)


def new_nonce() -> bytes:
    """The commitment randomness r: 32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(NONCE_BYTES)


def commit(encoded: bytes, nonce: bytes) -> bytes:
    """Com(x, r) for x already in canonical form (`encode_tensor` / `encode_label`); 32 bytes."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    digest = hashlib.sha256(COMMIT_TAG + b"\x00")
    digest.update(u64be(len(encoded)))
    digest.update(encoded)
    digest.update(nonce)
    return digest.digest()


def open_commitment(commitment: bytes, encoded: bytes, nonce: bytes) -> bool:
    """Open(c, x, r): true iff c == Com(x, r), compared in constant time."""
    if len(nonce) != NONCE_BYTES or len(commitment) != hashlib.sha256().digest_size:
        return False
    return hmac.compare_digest(commitment, commit(encoded, nonce))


def tagged_digest(tag: bytes, data: bytes) -> bytes:
    """SHA-256(tag ‖ 0x00 ‖ data): a digest that cannot collide with one made under another tag."""
    if b"\x00" in tag:
        raise ValueError("a domain tag must not contain a zero byte")
    return hashlib.sha256(tag + b"\x00" + data).digest()


def challenge_bits(statement: bytes, count: int) -> tuple[int, ...]:
    """Fiat-Shamir: `count` challenge bits derived from `statement` (e.g. a verification key's digest).

    Block j = SHA-256(CHALLENGE_TAG ‖ 0x00 ‖ u64be(count) ‖ u64be(j) ‖ statement); the bits are read
    from block 0 on, each byte from its most significant bit down. Anyone holding the statement
    recomputes the same bits; nobody can choose them without finding SHA-256 preimages.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    bits: list[int] = []
    block = 0
    while len(bits) < count:
        digest = hashlib.sha256(CHALLENGE_TAG + b"\x00" + u64be(count) + u64be(block) + statement).digest()
        for byte in digest:
            bits.extend((byte >> shift) & 1 for shift in range(7, -1, -1))
        block += 1
    return tuple(bits[:count])


def parse_hex(text: str, size: int, what: str) -> bytes:
    """Lower-case hex of exactly `size` bytes, or ValueError naming `what`."""
    if not isinstance(text, str) or len(text) != 2 * size or not re.fullmatch(r"[0-9a-f]*", text):
        raise ValueError(f"{what} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(text)
