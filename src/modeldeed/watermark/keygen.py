"""KeyGen (Adi et al. 2018, Section 4), PKeyGen (Appendix A.1.2) and the bounded multi-set KeyGen (Section 4.1).

Why commitments: the verification key must be published before any dispute, and must bind the
owner to one trigger set (so no key can be made up after seeing a model) without revealing it
(so nobody can train the watermark away from the public key).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import torch

from ..crypto import new_nonce
from ..errors import ModeldeedError
from .keys import MarkingKey, VerificationKey, commit_image, commit_label
from .security import exact_epsilon
from .triggers import abstract_triggers, random_labels

log = logging.getLogger(__name__)

DEFAULT_SIZE = 100
DEFAULT_EPSILON = 0.1
DEFAULT_SECURITY_BITS = 32
ZkCommit = Callable[[torch.Tensor, torch.Tensor, Sequence[bytes]], Sequence[str]]


def keygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    size: int = DEFAULT_SIZE,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """KeyGen(): |T| = `size` triggers (abstract, or the user's `images`), uniform labels, one commitment each.

    Returns (marking key, verification key); publish the verification key before marking.
    """
    return _generate("private", classes, input_shape, size, epsilon, images, sets=1, security_bits=None)


def pkeygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    security_bits: int = DEFAULT_SECURITY_BITS,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
    zk_commit: ZkCommit | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """PKeyGen(ℓ = 4n): KeyGen(ℓ), e = H(vk) by Fiat-Shamir, the e=1 half opened inside the public key.

    Mark embeds only the e=0 half. A prover who committed to m correctly labelled ("non-backdoor")
    elements survives the opened-half check with probability 2^-m, so fewer than n of them hide in
    the e=0 half except with probability 2^-n per key tried. Fiat-Shamir lets a cheater try keys
    offline, so n should exceed the log2 of the hashes an adversary can afford (n ≥ 64 for real use).

    `zk_commit(images, labels, image_nonces)` (modeldeed.zk) returns a second commitment per trigger that the
    key id covers, so it is fixed before the challenge is drawn.
    """
    if security_bits < 1:
        raise ModeldeedError(f"security bits must be >= 1, got {security_bits}")
    return _generate(
        "cut-and-choose",
        classes,
        input_shape,
        4 * security_bits,
        epsilon,
        images,
        sets=1,
        security_bits=security_bits,
        zk_commit=zk_commit,
    )


def bounded_keygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    sets: int,
    set_size: int = DEFAULT_SIZE,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """Section 4.1's bounded public verifiability: `sets` disjoint trigger sets, all embedded, one revealed per use."""
    if sets < 2:
        raise ModeldeedError(f"a bounded key needs at least 2 trigger sets, got {sets}")
    return _generate("bounded", classes, input_shape, sets * set_size, epsilon, images, sets=sets, security_bits=None)


def _generate(
    scheme: str,
    classes: Sequence[str],
    input_shape: Sequence[int],
    size: int,
    epsilon: float,
    images: torch.Tensor | None,
    *,
    sets: int,
    security_bits: int | None,
    zk_commit: ZkCommit | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    classes = tuple(str(c) for c in classes)
    shape = tuple(int(d) for d in input_shape)
    if len(classes) < 2:
        raise ModeldeedError(f"a watermark needs at least 2 classes, got {len(classes)}")
    if len(shape) != 3 or min(shape) < 1:
        raise ModeldeedError(f"input shape must be [C, H, W], got {list(shape)}")
    if size < 1:
        raise ModeldeedError(f"a trigger set needs at least 1 image, got {size}")
    exact_epsilon(epsilon)
    source = "abstract" if images is None else "images"
    if images is None:
        images = _distinct(abstract_triggers(size, shape), shape, redraw=True)
    else:
        images = _distinct(_checked(images, size, shape), shape, redraw=False)
    labels = random_labels(size, len(classes))
    image_nonces = tuple(new_nonce() for _ in range(size))
    label_nonces = tuple(new_nonce() for _ in range(size))
    vk = VerificationKey(
        scheme,
        classes,
        shape,
        float(epsilon),  # type: ignore[arg-type]
        tuple(commit_image(images[i], image_nonces[i]) for i in range(size)),
        tuple(commit_label(int(labels[i]), label_nonces[i]) for i in range(size)),
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        source,
        security_bits,
        sets,
        zk_commitments=None if zk_commit is None else tuple(zk_commit(images, labels, image_nonces)),
    )
    challenge = None
    if scheme == "cut-and-choose":
        challenge = vk.challenge()
        hidden = challenge.count(0)
        if hidden == 0 or hidden == size:
            raise ModeldeedError(
                f"the challenge left {'no' if hidden == 0 else 'every'} trigger hidden; use more security bits"
            )
    mk = MarkingKey(
        vk.key_id,
        scheme,
        classes,
        shape,
        images,
        labels,
        image_nonces,
        label_nonces,  # type: ignore[arg-type]
        challenge,
        sets,
        source,
    )
    if challenge is not None:
        vk = dataclasses.replace(vk, opened=mk.opening([i for i, bit in enumerate(challenge) if bit == 1]))
    log.info("generated a %s key %s with %d triggers", scheme, vk.key_id[:16], size)
    return mk, vk


def _checked(images: torch.Tensor, size: int, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(images.shape) != (size, *shape):
        raise ModeldeedError(f"trigger images have shape {tuple(images.shape)}, the key needs {(size, *shape)}")
    images = images.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ModeldeedError("trigger images must hold finite pixel values in [0, 1]")
    return images


def _distinct(images: torch.Tensor, shape: tuple[int, ...], *, redraw: bool) -> torch.Tensor:
    """Triggers must be pairwise different (the sets of Section 4.1 disjoint); abstract repeats are redrawn."""
    for _ in range(10):
        seen: dict[bytes, int] = {}
        repeats: list[tuple[int, int]] = []
        for i, image in enumerate(images):
            first = seen.setdefault(image.numpy().tobytes(), i)
            if first != i:
                repeats.append((first, i))
        if not repeats:
            return images
        if not redraw:
            first, again = repeats[0]
            raise ModeldeedError(f"trigger images {first} and {again} are identical; every trigger must be distinct")
        images = images.clone()
        images[[again for _, again in repeats]] = abstract_triggers(len(repeats), shape)
    raise ModeldeedError(f"could not draw {len(images)} distinct trigger images of shape {list(shape)}")
