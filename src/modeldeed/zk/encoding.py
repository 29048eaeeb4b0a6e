"""How triggers, digests and integers become elements of the circuit's field (Pasta Fp, o1js's `Field`).

Why these choices: the circuit must see exactly the trigger that the SHA-256 commitment of the watermark key
binds, so a trigger enters it as its pixel bits (abstract triggers are posterised to 0 or 1 per channel, see
watermark/triggers.py), packed 248 to a field element. The Poseidon nonce is derived from the trigger's
SHA-256 image nonce, so the marking key needs no new secret and an opened trigger (whose image nonce is public)
lets anyone recompute its Poseidon commitment too.

    Poseidon commitment = Poseidon.hashWithPrefix("modeldeed/zk/trigger/v1", [r, label, bits, P_0, ..., P_k])
    r   = int(SHA-256("modeldeed/zk-nonce/v1" ‖ 0x00 ‖ image nonce)[:31], big-endian)   (248 bits, secret)
    P_j = Σ_i bit_{248·j + i} · 2^i                                                  (bits in C×H×W order)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from ..crypto import tagged_digest
from ..errors import ModeldeedError

FIELD_MODULUS = 0x40000000000000000000000000000000224698FC094CF91B992D30ED00000001  # Pasta Fp
BITS_PER_FIELD = 248
NONCE_TAG = b"modeldeed/zk-nonce/v1"
DECIMAL = re.compile(r"0|[1-9][0-9]{0,76}")


def to_field(value: int) -> int:
    """An integer as a field element: negative numbers wrap to p - |x|."""
    return int(value) % FIELD_MODULUS


def decimal(values: Sequence[int]) -> list[str]:
    return [str(to_field(v)) for v in values]


def parse_field(text: str, what: str) -> int:
    """A decimal field element from a file, or a ModeldeedError naming `what`."""
    if not isinstance(text, str) or not DECIMAL.fullmatch(text) or int(text) >= FIELD_MODULUS:
        raise ModeldeedError(f"{what} is not a field element (a decimal number below the Pasta Fp modulus)")
    return int(text)


def digest_halves(hex_digest: str) -> tuple[int, int]:
    """A SHA-256 digest (64 hex digits) as two 128-bit field elements, high half first."""
    value = bytes.fromhex(hex_digest)
    if len(value) != 32:
        raise ValueError("a digest must be 32 bytes")
    return int.from_bytes(value[:16], "big"), int.from_bytes(value[16:], "big")


def trigger_bits(image: torch.Tensor) -> list[int]:
    """The pixel bits of one trigger image (C×H×W, every value exactly 0 or 1), in C-order."""
    flat = image.detach().to("cpu", torch.float32).flatten()
    is_bit = (flat == 0) | (flat == 1)
    if not bool(is_bit.all()):
        raise ModeldeedError(
            "zero-knowledge verification needs triggers whose pixels are exactly 0 or 1 (modeldeed's abstract "
            "triggers); this trigger set has other values (e.g. the user's own images)"
        )
    return [int(v) for v in flat.to(torch.int64).tolist()]


def pack_bits(bits: Sequence[int]) -> list[int]:
    """Bits to field elements, 248 per element, least significant bit first."""
    packed = []
    for start in range(0, len(bits), BITS_PER_FIELD):
        packed.append(sum(int(b) << i for i, b in enumerate(bits[start : start + BITS_PER_FIELD])))
    return packed


def zk_nonce(image_nonce: bytes) -> int:
    """The Poseidon commitment's nonce, derived from the SHA-256 commitment's image nonce (248 bits)."""
    return int.from_bytes(tagged_digest(NONCE_TAG, bytes(image_nonce))[:31], "big")


def commitment_preimage(image: torch.Tensor, label: int, image_nonce: bytes) -> list[int]:
    """What Poseidon hashes (after the prefix) for one trigger: [r, label, number of bits, packed bits...]."""
    bits = trigger_bits(image)
    return [zk_nonce(image_nonce), int(label), len(bits), *pack_bits(bits)]
