"""Commitments and Fiat-Shamir challenges: golden vectors pin the byte layout of docs/formats.md."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from modeldeed.crypto import (
    COMMIT_TAG,
    NONCE_BYTES,
    challenge_bits,
    commit,
    encode_label,
    encode_tensor,
    new_nonce,
    open_commitment,
    parse_hex,
    tagged_digest,
)

ARRAY = np.array([[0.0, 0.5], [1.0, 0.25]], dtype="<f4")
NONCE = bytes(range(32))


def test_tensor_encoding_golden() -> None:
    encoded = encode_tensor("<f4", ARRAY.shape, ARRAY.tobytes())
    assert encoded.hex() == ("41033c66340200000000000000020000000000000002000000000000003f0000803f0000803e")


def test_label_encoding_golden() -> None:
    assert encode_label(7).hex() == "4c0000000000000007"
    assert encode_label(2**64 - 1) == b"L" + b"\xff" * 8


def test_commitment_golden_and_independent_recomputation() -> None:
    encoded = encode_tensor("<f4", ARRAY.shape, ARRAY.tobytes())
    expected = "4a986b657d4b2d14cb7d9b078b5ba1464729007097ca9445ea28f55dbb4221b1"
    assert commit(encoded, NONCE).hex() == expected
    # The layout written out by hand, as docs/formats.md states it.
    by_hand = hashlib.sha256(b"modeldeed/commit/v1\x00" + len(encoded).to_bytes(8, "big") + encoded + NONCE)
    assert by_hand.hexdigest() == expected
    assert commit(encode_label(7), NONCE).hex() == "d6eed8d79e017641a02c2c5285f9dbc00991a6607ed9c10b6b7e1e15b0192505"
    assert COMMIT_TAG == b"modeldeed/commit/v1"


def test_open_accepts_only_the_committed_value_and_nonce() -> None:
    nonce = new_nonce()
    assert len(nonce) == NONCE_BYTES and nonce != new_nonce()
    value = encode_label(3)
    c = commit(value, nonce)
    assert open_commitment(c, value, nonce)
    assert not open_commitment(c, encode_label(4), nonce)
    assert not open_commitment(c, value, bytes(32))
    flipped = bytes([c[0] ^ 1]) + c[1:]
    assert not open_commitment(flipped, value, nonce)
    assert not open_commitment(c[:31], value, nonce)
    assert not open_commitment(c, value, nonce[:31])


def test_encoding_binds_dtype_shape_and_kind() -> None:
    data = ARRAY.tobytes()
    flat = encode_tensor("<f4", (4,), data)
    square = encode_tensor("<f4", (2, 2), data)
    as_int = encode_tensor("<i4", (2, 2), data)
    assert len({flat, square, as_int}) == 3
    assert commit(flat, NONCE) != commit(square, NONCE)
    # A label and an image never share an encoding: the first byte says which it is.
    assert encode_label(0)[:1] == b"L" and flat[:1] == b"A"


@pytest.mark.parametrize(
    "dtype, shape, size",
    [("f4", (2,), 8), ("<f4", (3,), 8), ("<f4", (-1,), 0), ("<x4", (1,), 4)],
)
def test_encoding_rejects_inconsistent_input(dtype: str, shape: tuple[int, ...], size: int) -> None:
    with pytest.raises(ValueError):
        encode_tensor(dtype, shape, bytes(size))


def test_label_encoding_rejects_non_integers() -> None:
    for bad in (-1, 2**64, True, 1.0):
        with pytest.raises(ValueError):
            encode_label(bad)  # type: ignore[arg-type]


def test_challenge_bits_golden_reproducible_and_sensitive() -> None:
    assert "".join(map(str, challenge_bits(b"abc", 20))) == "11010110100011000010"
    block = hashlib.sha256(b"modeldeed/fiat-shamir/v1\x00" + (20).to_bytes(8, "big") + bytes(8) + b"abc").digest()
    assert "".join(f"{byte:08b}" for byte in block)[:20] == "11010110100011000010"
    long = challenge_bits(b"statement", 1000)
    assert len(long) == 1000 and long == challenge_bits(b"statement", 1000)
    assert 400 < sum(long) < 600
    assert long != challenge_bits(b"statemenT", 1000)
    assert challenge_bits(b"x", 0) == ()


def test_tagged_digest_separates_domains() -> None:
    assert tagged_digest(b"a", b"bc") != tagged_digest(b"ab", b"c")
    assert tagged_digest(b"a", b"x") == hashlib.sha256(b"a\x00x").digest()
    with pytest.raises(ValueError):
        tagged_digest(b"a\x00", b"")


def test_parse_hex() -> None:
    assert parse_hex("00ff", 2, "x") == b"\x00\xff"
    for bad in ("00FF", "00f", "zz00", 5):
        with pytest.raises(ValueError, match="x must be 4 lowercase hex digits"):
            parse_hex(bad, 2, "x")  # type: ignore[arg-type]
