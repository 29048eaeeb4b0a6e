"""Keys made for zero-knowledge verification: a cut-and-choose key whose triggers are also Poseidon-committed.

Why both commitments, and why inside the key id: the rest of modeldeed opens SHA-256 commitments, while a
circuit can only afford Poseidon. The two must bind the same trigger. Both lists are in the verification key's
core, so the key id (and with it the challenge e = H(vk)) is drawn only after both are fixed; the opened half
then shows, for every opened trigger, that its Poseidon commitment opens to the very image and label its
SHA-256 commitments open to. A key whose two commitments disagree on m triggers passes that check only if all
m fall into the hidden half: probability 2^-m, the same cut-and-choose bound that already limits correctly
labelled triggers (docs/watermark.md). So inconsistent triggers are just one more kind of "bad element".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ..errors import ModeldeedError
from ..watermark import MarkingKey, VerificationKey, pkeygen
from ..watermark.keygen import DEFAULT_EPSILON, DEFAULT_SECURITY_BITS
from .circuit import cache_root
from .encoding import commitment_preimage, decimal, parse_field
from .node import run_node

log = logging.getLogger(__name__)


def poseidon_commitments(images: torch.Tensor, labels: Sequence[int], image_nonces: Sequence[bytes]) -> list[str]:
    """The Poseidon commitment of every trigger (decimal field elements), computed by o1js."""
    if not (len(images) == len(labels) == len(image_nonces)):
        raise ModeldeedError("images, labels and nonces differ in number")
    if len(images) == 0:
        return []
    preimages = [decimal(commitment_preimage(images[i], int(labels[i]), image_nonces[i])) for i in range(len(images))]
    answer = run_node("commit", {"inputs": preimages}, cache_root()).answer
    hashes = answer.get("hashes")
    if not isinstance(hashes, list) or len(hashes) != len(images):
        raise ModeldeedError("the o1js commit step returned the wrong number of commitments")
    return [str(parse_field(h, f"commitment {i}")) for i, h in enumerate(hashes)]


def zk_pkeygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    security_bits: int = DEFAULT_SECURITY_BITS,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
    labels: Sequence[int] | None = None,
    seed: int | None = None,
    created: str | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """PKeyGen(ℓ = 4n), each trigger also committed with Poseidon inside the key id (`pkeygen`'s arguments).

    The triggers must be binary images: modeldeed's abstract ones are; the user's own `images` are refused
    unless every pixel is exactly 0 or 1.
    """

    def commit(images: torch.Tensor, labels: Sequence[int], nonces: Sequence[bytes]) -> list[str]:
        return poseidon_commitments(images, [int(v) for v in labels], nonces)

    return pkeygen(
        classes,
        input_shape,
        security_bits=security_bits,
        epsilon=epsilon,
        images=images,
        labels=labels,
        seed=seed,
        created=created,
        zk_commit=commit,
    )


def require_zk_key(vk: VerificationKey) -> tuple[str, ...]:
    if vk.scheme != "cut-and-choose" or vk.opened is None:
        raise ModeldeedError(
            f"zero-knowledge verification needs a cut-and-choose key made with `watermark zk-keygen`; this is a "
            f"{vk.scheme} key"
        )
    if vk.zk_commitments is None:
        raise ModeldeedError(
            "this key has no Poseidon commitments: it was not made for zero-knowledge verification "
            "(make one with `modeldeed watermark zk-keygen`)"
        )
    for i, value in enumerate(vk.zk_commitments):
        parse_field(value, f"the key's Poseidon commitment {i}")
    return vk.zk_commitments


def opened_half_problems(vk: VerificationKey) -> list[str]:
    """Every opened trigger whose Poseidon commitment does not open to its (already SHA-256-opened) contents."""
    commitments = require_zk_key(vk)
    opened = vk.opened
    assert opened is not None
    if not opened.indices:
        return []
    try:
        recomputed = poseidon_commitments(opened.images, opened.labels, opened.image_nonces)
    except ModeldeedError as exc:
        if "exactly 0 or 1" in str(exc):
            return ["the opened triggers are not binary images, so no Poseidon commitment can open to them"]
        raise
    return [
        f"trigger {i}: its Poseidon commitment does not open to the image and label its SHA-256 commitments open to"
        for i, value in zip(opened.indices, recomputed)
        if value != commitments[i]
    ]
