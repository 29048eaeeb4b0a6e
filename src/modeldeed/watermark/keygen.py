"""KeyGen (Adi et al. 2018, Section 4), PKeyGen (Appendix A.1.2) and the bounded multi-set KeyGen (Section 4.1).

Why commitments: the verification key must be published before any dispute, and must bind the owner to one
trigger set (so no key can be made up after seeing a model) without revealing it (so nobody can train the
watermark away from the public key). Why derived labels: a label its maker chooses can be chosen after seeing
a model; here each set's labels follow from its image commitments by a hash (`labels`), so nobody picks them.
A user's own labels stay possible (`labels=`) and the key says so ("chosen").

Every count and size is checked against `limits` before anything is drawn or allocated.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np
import torch

from ..crypto import NONCE_BYTES, tagged_digest, u64be
from ..errors import ModeldeedError
from .documents import TIME_FORMAT, format_time, parse_time
from .keys import MarkingKey, VerificationKey, commit_image, commit_label
from .labels import derive_labels
from .limits import (
    MAX_CLASSES,
    MAX_SECURITY_BITS,
    MAX_SEED,
    MAX_TRIGGERS,
    check_count,
    check_epsilon,
    check_input_shape,
    check_trigger_budget,
)
from .security import exact_epsilon
from .triggers import abstract_triggers

log = logging.getLogger(__name__)

DEFAULT_SIZE = 100
DEFAULT_EPSILON = 0.1
DEFAULT_SECURITY_BITS = 32
DEMONSTRATION_TAG = b"modeldeed/demonstration-key/v1"
DEMONSTRATION_CREATED = "1970-01-01T00:00:00Z"  # so that one seed gives one key, byte for byte
ZkCommit = Callable[[torch.Tensor, Sequence[int], Sequence[bytes]], Sequence[str]]


class KeyRandomness:
    """Where a key's secrets come from: the operating system's CSPRNG, or, for a demonstration key, a seed.

    A seeded key is reproducible and therefore public to anyone who knows the seed: its verification key
    records the seed, and every verdict on it says so.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None:
            check_count("the seed", seed, minimum=0, maximum=MAX_SEED)
        self.seed = seed

    def draw(self, purpose: bytes, index: int, count: int = 32) -> bytes:
        if self.seed is None:
            return secrets.token_bytes(count)
        return tagged_digest(DEMONSTRATION_TAG, u64be(self.seed) + purpose + b"\x00" + u64be(index))[:count]

    def nonce(self, purpose: bytes, index: int) -> bytes:
        return self.draw(purpose, index, NONCE_BYTES)

    def image_seeds(self, count: int, round_: int = 0) -> list[int]:
        return [int.from_bytes(self.draw(b"image-seed", round_ * MAX_TRIGGERS + i, 16), "big") for i in range(count)]

    def subset(self, available: int, count: int) -> list[int]:
        """`count` of `available` positions, uniformly without replacement, in increasing order."""
        if self.seed is None:
            order = list(range(available))
            secrets.SystemRandom().shuffle(order)
        else:
            order = np.random.default_rng(int.from_bytes(self.draw(b"subset", 0, 16), "big")).permutation(available)
        return sorted(int(i) for i in order[:count])


def keygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    size: int = DEFAULT_SIZE,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
    labels: Sequence[int] | None = None,
    seed: int | None = None,
    created: str | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """KeyGen(): |T| = `size` triggers (abstract, or the user's `images`), one commitment per image and label.

    Labels are derived from the image commitments unless `labels` gives the user's own (marked "chosen").
    `seed` makes a reproducible demonstration key (its secrets follow from the seed, which the key records;
    `created` then defaults to 1970-01-01T00:00:00Z). Returns (marking key, verification key); publish the
    verification key before marking.
    """
    return _generate("private", classes, input_shape, size, epsilon, images, labels, seed, created, sets=1)


def pkeygen(
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    security_bits: int = DEFAULT_SECURITY_BITS,
    epsilon: float = DEFAULT_EPSILON,
    images: torch.Tensor | None = None,
    labels: Sequence[int] | None = None,
    seed: int | None = None,
    created: str | None = None,
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
    check_count("security bits", security_bits, maximum=min(MAX_SECURITY_BITS, MAX_TRIGGERS // 4))
    return _generate(
        "cut-and-choose",
        classes,
        input_shape,
        4 * security_bits,
        epsilon,
        images,
        labels,
        seed,
        created,
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
    labels: Sequence[int] | None = None,
    seed: int | None = None,
    created: str | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    """Section 4.1's bounded public verifiability: `sets` disjoint trigger sets, all embedded, one revealed per use.

    Each set's labels are derived from that set's image commitments alone, so a reveal of one set is checked
    on its own.
    """
    check_count("the number of trigger sets", sets, minimum=2, maximum=MAX_TRIGGERS // 2)
    check_count("the size of a trigger set", set_size, maximum=MAX_TRIGGERS // sets)
    return _generate(
        "bounded", classes, input_shape, sets * set_size, epsilon, images, labels, seed, created, sets=sets
    )


def _generate(
    scheme: str,
    classes: Sequence[str],
    input_shape: Sequence[int],
    size: int,
    epsilon: float,
    images: torch.Tensor | None,
    labels: Sequence[int] | None,
    seed: int | None,
    created: str | None,
    *,
    sets: int,
    security_bits: int | None = None,
    zk_commit: ZkCommit | None = None,
) -> tuple[MarkingKey, VerificationKey]:
    names = tuple(str(c) for c in classes)
    check_count("the number of classes", len(names), minimum=2, maximum=MAX_CLASSES)
    shape = check_input_shape(tuple(int(d) for d in input_shape))
    check_count("the number of triggers", size)
    check_trigger_budget(size, shape)
    exact_epsilon(check_epsilon(epsilon))
    randomness = KeyRandomness(seed)
    if created is None:
        created = DEMONSTRATION_CREATED if seed is not None else format_time(datetime.now(timezone.utc))
    try:
        parse_time(created)
    except (TypeError, ValueError):
        raise ModeldeedError(f"created must be a UTC time like {TIME_FORMAT!r}, got {created!r}") from None
    chosen = None if labels is None else _checked_labels(labels, size, len(names))

    source = "abstract" if images is None else "images"
    if images is None:
        images = _distinct(abstract_triggers(size, shape, seeds=randomness.image_seeds(size)), shape, randomness)
    else:
        images = _distinct(_checked(images, size, shape), shape, None)
    image_nonces = tuple(randomness.nonce(b"image-nonce", i) for i in range(size))
    label_nonces = tuple(randomness.nonce(b"label-nonce", i) for i in range(size))
    image_commitments = tuple(commit_image(images[i], image_nonces[i]) for i in range(size))
    values = chosen if chosen is not None else derive_labels(image_commitments, len(names), sets=sets)
    vk = VerificationKey(
        scheme,
        names,
        shape,
        float(epsilon),
        image_commitments,
        tuple(commit_label(values[i], label_nonces[i]) for i in range(size)),
        created,
        source,
        security_bits,
        sets,
        label_kind="derived" if chosen is None else "chosen",
        demonstration_seed=seed,
        zk_commitments=None if zk_commit is None else tuple(zk_commit(images, values, image_nonces)),
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
        names,
        shape,
        images,
        torch.tensor(values, dtype=torch.int64),
        image_nonces,
        label_nonces,
        challenge,
        sets,
        source,
    )
    if challenge is not None:
        vk = dataclasses.replace(vk, opened=mk.opening([i for i, bit in enumerate(challenge) if bit == 1]))
    log.info("generated a %s key %s with %d triggers (%s labels)", scheme, vk.key_id[:16], size, vk.label_kind)
    return mk, vk


def _checked_labels(labels: Sequence[int], size: int, num_classes: int) -> list[int]:
    values = list(labels)
    if len(values) != size:
        raise ModeldeedError(f"{len(values)} labels were given for {size} triggers")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < num_classes:
            raise ModeldeedError(f"label {i} is {value!r}; labels are class indices in [0, {num_classes})")
    return [int(v) for v in values]


def _checked(images: torch.Tensor, size: int, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(images.shape) != (size, *shape):
        raise ModeldeedError(f"trigger images have shape {tuple(images.shape)}, the key needs {(size, *shape)}")
    images = images.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ModeldeedError("trigger images must hold finite pixel values in [0, 1]")
    return images


def _distinct(images: torch.Tensor, shape: tuple[int, ...], randomness: KeyRandomness | None) -> torch.Tensor:
    """Triggers must be pairwise different (the sets of Section 4.1 disjoint); abstract repeats are redrawn."""
    for attempt in range(1, 11):
        seen: dict[bytes, int] = {}
        repeats: list[tuple[int, int]] = []
        for i, image in enumerate(images):
            first = seen.setdefault(image.numpy().tobytes(), i)
            if first != i:
                repeats.append((first, i))
        if not repeats:
            return images
        if randomness is None:
            first, again = repeats[0]
            raise ModeldeedError(f"trigger images {first} and {again} are identical; every trigger must be distinct")
        images = images.clone()
        seeds = randomness.image_seeds(len(repeats), round_=attempt)
        images[[again for _, again in repeats]] = abstract_triggers(len(repeats), shape, seeds=seeds)
    raise ModeldeedError(f"could not draw {len(images)} distinct trigger images of shape {list(shape)}")
