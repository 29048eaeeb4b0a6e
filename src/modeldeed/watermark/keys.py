"""The marking key (secret) and verification key (public): in memory, and on disk without pickle.

Why so strict on load: a verifier opens keys that an adversary may have written. Every field is
checked and named in the error, unknown fields are refused (the key id is a digest of the parsed
fields, so nothing may ride along unhashed), and tensors come from safetensors only.
The byte layouts are specified in docs/formats.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..crypto import NONCE_BYTES, challenge_bits, commit, encode_label, encode_tensor, open_commitment, tagged_digest
from ..errors import FormatError, file_error
from ..files import (
    canonical_json,
    read_json_object,
    read_safetensors,
    safetensors_bound,
    write_json_atomic,
    write_safetensors_atomic,
)
from ..validation import Fields

VK_FORMAT = "modeldeed.watermark.verification-key"
MK_FORMAT = "modeldeed.watermark.marking-key"
VK_FILE, VK_TENSORS = "verification_key.json", "verification_key.safetensors"
MK_FILE, MK_TENSORS = "marking_key.json", "marking_key.safetensors"
TRIGGER_PNG_DIR = "triggers"
VK_TAG = b"modeldeed/verification-key/v1"
SCHEMES = ("private", "cut-and-choose", "bounded")
SOURCES = ("abstract", "images")
# A key made for zero-knowledge verification (modeldeed.zk) also commits to every trigger with Poseidon over
# the Pasta field; the watermark package only stores those commitments (decimal field elements) and lets the
# key id cover them, so that they are fixed before the challenge e = H(vk) is drawn.
ZK_HASH = "poseidon-kimchi-pasta-fp"
_DECIMAL_FIELD = re.compile(r"0|[1-9][0-9]{0,76}")


def image_encoding(image: torch.Tensor) -> bytes:
    """Canonical bytes of one trigger image: float32, little-endian, C×H×W."""
    array = image.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return encode_tensor("<f4", array.shape, array.tobytes())


def commit_image(image: torch.Tensor, nonce: bytes) -> str:
    return commit(image_encoding(image), nonce).hex()


def commit_label(label: int, nonce: bytes) -> str:
    return commit(encode_label(int(label)), nonce).hex()


@dataclass(frozen=True, eq=False)
class Opening:
    """Trigger elements with what opens their commitments: the revealed part of a marking key."""

    indices: tuple[int, ...]
    images: torch.Tensor  # len(indices)×C×H×W float32
    labels: tuple[int, ...]
    image_nonces: tuple[bytes, ...]
    label_nonces: tuple[bytes, ...]

    def failures(self, vk: VerificationKey) -> list[str]:
        """Every element whose image or label does not open the commitment at its index, with the reason."""
        problems = []
        for j, i in enumerate(self.indices):
            if not open_commitment(
                bytes.fromhex(vk.image_commitments[i]), image_encoding(self.images[j]), self.image_nonces[j]
            ):
                problems.append(f"trigger {i}: the image does not open its commitment (image or nonce changed)")
            if not open_commitment(
                bytes.fromhex(vk.label_commitments[i]), encode_label(self.labels[j]), self.label_nonces[j]
            ):
                problems.append(
                    f"trigger {i}: label {self.labels[j]} does not open its commitment (label or nonce changed)"
                )
        return problems

    def to_json(self) -> dict[str, Any]:
        return {
            "indices": list(self.indices),
            "labels": list(self.labels),
            "image_nonces": [n.hex() for n in self.image_nonces],
            "label_nonces": [n.hex() for n in self.label_nonces],
        }


@dataclass(frozen=True, eq=False)
class VerificationKey:
    """Public: commitments to every trigger image and label, the acceptance rule, what the key fits."""

    scheme: str
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    epsilon: float
    image_commitments: tuple[str, ...]
    label_commitments: tuple[str, ...]
    created: str
    trigger_source: str = "abstract"
    security_bits: int | None = None  # cut-and-choose: size = 4·security_bits
    sets: int = 1  # bounded: disjoint trigger sets of size // sets each
    opened: Opening | None = None  # cut-and-choose: the e=1 half, opened
    modeldeed_version: str = __version__
    zk_commitments: tuple[str, ...] | None = None  # cut-and-choose for modeldeed.zk: Poseidon, one per trigger

    @property
    def size(self) -> int:
        return len(self.image_commitments)

    @property
    def set_size(self) -> int:
        return self.size // self.sets

    def set_indices(self, index: int) -> range:
        return range(index * self.set_size, (index + 1) * self.set_size)

    def core_json(self) -> dict[str, Any]:
        """Everything but the opened half: what the key id, and so the Fiat-Shamir challenge, hash."""
        doc: dict[str, Any] = {
            "format": VK_FORMAT,
            "version": 1,
            "modeldeed_version": self.modeldeed_version,
            "scheme": self.scheme,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "epsilon": self.epsilon,
            "size": self.size,
            "sets": self.sets,
            "created": self.created,
            "trigger_source": self.trigger_source,
            "commitment": {"hash": "sha256", "nonce_bytes": NONCE_BYTES},
            "image_commitments": list(self.image_commitments),
            "label_commitments": list(self.label_commitments),
        }
        if self.security_bits is not None:
            doc["security_bits"] = self.security_bits
        if self.zk_commitments is not None:
            doc["zk"] = {"hash": ZK_HASH, "commitments": list(self.zk_commitments)}
        return doc

    def to_json(self) -> dict[str, Any]:
        doc = self.core_json()
        if self.opened is not None:
            doc["opened"] = self.opened.to_json()
        return doc

    @property
    def key_id(self) -> str:
        return tagged_digest(VK_TAG, canonical_json(self.core_json())).hex()

    def challenge(self) -> tuple[int, ...]:
        """e = H(vk), one bit per trigger: 1 = opened in the public key, 0 = kept secret and embedded."""
        return challenge_bits(bytes.fromhex(self.key_id), self.size)


@dataclass(frozen=True, eq=False)
class MarkingKey:
    """Secret: the trigger images, their labels and the nonces that open the commitments."""

    key_id: str  # the verification key this belongs to
    scheme: str
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    images: torch.Tensor  # size×C×H×W float32 in [0, 1]
    labels: torch.Tensor  # size, int64
    image_nonces: tuple[bytes, ...]
    label_nonces: tuple[bytes, ...]
    challenge: tuple[int, ...] | None = None  # cut-and-choose only
    sets: int = 1
    trigger_source: str = "abstract"

    @property
    def size(self) -> int:
        return len(self.labels)

    def marking_indices(self) -> list[int]:
        """What Mark embeds: the hidden (e=0) half for cut-and-choose keys, every trigger otherwise."""
        if self.challenge is not None:
            return [i for i, bit in enumerate(self.challenge) if bit == 0]
        return list(range(self.size))

    def opening(self, indices: Sequence[int]) -> Opening:
        index = torch.as_tensor(list(indices), dtype=torch.int64)
        return Opening(
            tuple(int(i) for i in indices),
            self.images[index].clone(),
            tuple(int(v) for v in self.labels[index]),
            tuple(self.image_nonces[i] for i in indices),
            tuple(self.label_nonces[i] for i in indices),
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": MK_FORMAT,
            "version": 1,
            "modeldeed_version": __version__,
            "key_id": self.key_id,
            "scheme": self.scheme,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "size": self.size,
            "sets": self.sets,
            "trigger_source": self.trigger_source,
            "labels": [int(v) for v in self.labels],
            "image_nonces": [n.hex() for n in self.image_nonces],
            "label_nonces": [n.hex() for n in self.label_nonces],
        }
        if self.challenge is not None:
            doc["challenge"] = "".join(map(str, self.challenge))
        return doc


def save_key_pair(
    directory: str | Path, marking_key: MarkingKey, verification_key: VerificationKey, *, pngs: bool = True
) -> Path:
    """Write both keys (and PNGs of the triggers); the verification key last, so its presence means done."""
    from .triggers import write_trigger_pngs

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(directory / MK_TENSORS, {"images": marking_key.images}, {"format": MK_FORMAT})
    write_json_atomic(directory / MK_FILE, marking_key.to_json())
    if pngs:
        write_trigger_pngs(directory / TRIGGER_PNG_DIR, marking_key.images, marking_key.labels, marking_key.classes)
    save_verification_key(directory, verification_key)
    return directory


def save_verification_key(directory: str | Path, verification_key: VerificationKey) -> Path:
    directory = Path(directory)
    if verification_key.opened is not None:
        write_safetensors_atomic(
            directory / VK_TENSORS, {"opened_images": verification_key.opened.images}, {"format": VK_FORMAT}
        )
    write_json_atomic(directory / VK_FILE, verification_key.to_json())
    return directory


def _key_path(path: str | Path, name: str) -> Path:
    path = Path(path)
    if path.is_dir():
        return path / name
    if path.is_file():
        return path if path.name == name else path.parent / name
    raise file_error(FormatError, path, "key directory not found")


def _common_fields(f: Fields) -> tuple[str, tuple[str, ...], tuple[int, int, int], int, int, str]:
    scheme = f.str("scheme", choices=SCHEMES)
    classes = tuple(f.str_list("classes"))
    if len(classes) < 2:
        raise f.fail("classes", f"must name at least 2 classes, found {len(classes)}")
    c, h, w = f.int_list("input_shape", length=3, minimum=1)
    size = f.int("size", minimum=1)
    sets = f.int("sets", minimum=1)
    if scheme == "bounded" and (sets < 2 or size % sets):
        raise f.fail("sets", f"a bounded key needs at least 2 sets that divide size {size}; found {sets}")
    if scheme != "bounded" and sets != 1:
        raise f.fail("sets", f"must be 1 for a {scheme} key, found {sets}")
    return scheme, classes, (c, h, w), size, sets, f.str("trigger_source", choices=SOURCES)


def _refuse_unknown(f: Fields, allowed: set[str]) -> None:
    for key in sorted(set(f.obj) - allowed):
        raise f.fail(key, "is not part of this format (refusing fields that the key id would not cover)")


def _hex_list(f: Fields, key: str, length: int, size: int) -> tuple[bytes, ...]:
    values = f.str_list(key, length=length)
    for i, value in enumerate(values):
        if len(value) != 2 * size or any(ch not in "0123456789abcdef" for ch in value):
            raise f.fail(key, f"entry {i} must be {2 * size} lowercase hex digits")
    return tuple(bytes.fromhex(v) for v in values)


def _labels(f: Fields, key: str, length: int, num_classes: int) -> list[int]:
    labels = f.int_list(key, length=length, minimum=0)
    for i, label in enumerate(labels):
        if label >= num_classes:
            raise f.fail(key, f"entry {i} is {label}, but the key has {num_classes} classes")
    return labels


def _images(path: Path, name: str, count: int, shape: tuple[int, int, int]) -> torch.Tensor:
    tensors = read_safetensors(path, max_bytes=safetensors_bound(4 * count * shape[0] * shape[1] * shape[2]))
    if set(tensors) != {name}:
        raise file_error(FormatError, path, f"must hold exactly one tensor {name!r}, found {sorted(tensors)}")
    images = tensors[name]
    if images.dtype != torch.float32 or tuple(images.shape) != (count, *shape):
        raise file_error(
            FormatError,
            path,
            f"tensor {name!r} is {images.dtype}{tuple(images.shape)}; the key needs "
            f"torch.float32{(count, *shape)} (input shape {list(shape)})",
        )
    if count and (not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1):
        raise file_error(FormatError, path, f"tensor {name!r} must hold finite pixel values in [0, 1]")
    return images


def opening_from_fields(f: Fields, images: torch.Tensor | None, size: int, num_classes: int) -> Opening:
    indices = f.int_list("indices", minimum=0)
    if any(b <= a for a, b in zip(indices, indices[1:])) or (indices and indices[-1] >= size):
        raise f.fail("indices", f"must be strictly increasing trigger indices below {size}")
    n = len(indices)
    labels = _labels(f, "labels", n, num_classes)
    image_nonces = _hex_list(f, "image_nonces", n, NONCE_BYTES)
    label_nonces = _hex_list(f, "label_nonces", n, NONCE_BYTES)
    empty = torch.zeros((0,), dtype=torch.float32)
    return Opening(tuple(indices), images if images is not None else empty, tuple(labels), image_nonces, label_nonces)


def load_verification_key(path: str | Path) -> VerificationKey:
    """A verification key from its directory (or its `verification_key.json`), every field checked."""
    json_path = _key_path(path, VK_FILE)
    f = Fields(read_json_object(json_path), json_path)
    f.expect_format(VK_FORMAT)
    allowed = {
        "format",
        "version",
        "modeldeed_version",
        "scheme",
        "classes",
        "input_shape",
        "epsilon",
        "size",
        "sets",
        "created",
        "trigger_source",
        "commitment",
        "image_commitments",
        "label_commitments",
        "security_bits",
        "opened",
        "zk",
    }
    _refuse_unknown(f, allowed)
    scheme, classes, shape, size, sets, source = _common_fields(f)
    commitment = f.object("commitment")
    commitment.str("hash", choices=("sha256",))
    if commitment.int("nonce_bytes") != NONCE_BYTES or set(commitment.obj) != {"hash", "nonce_bytes"}:
        raise f.fail("commitment", f'must be {{"hash": "sha256", "nonce_bytes": {NONCE_BYTES}}}')
    image_commitments = tuple(c.hex() for c in _hex_list(f, "image_commitments", size, 32))
    label_commitments = tuple(c.hex() for c in _hex_list(f, "label_commitments", size, 32))
    epsilon = f.float("epsilon", minimum=0.0)
    if epsilon >= 1:
        raise f.fail("epsilon", f"must be below 1, found {epsilon}")
    security_bits = opened = None
    if scheme == "cut-and-choose":
        security_bits = f.int("security_bits", minimum=1)
        if size != 4 * security_bits:
            raise f.fail("size", f"must be 4 × security_bits = {4 * security_bits} (ℓ = 4n), found {size}")
        of = f.object("opened")
        count = len(of.list("indices"))
        images = _images(json_path.parent / VK_TENSORS, "opened_images", count, shape)
        opened = opening_from_fields(of, images, size, len(classes))
    else:
        for key in ("security_bits", "opened", "zk"):
            if f.has(key):
                raise f.fail(key, f"belongs only in a cut-and-choose key, not a {scheme} key")
    return VerificationKey(
        scheme,
        classes,
        shape,
        epsilon,
        image_commitments,
        label_commitments,
        f.str("created"),
        source,
        security_bits,
        sets,
        opened,
        f.str("modeldeed_version"),
        _zk_commitments(f, size) if f.has("zk") else None,
    )


def _zk_commitments(f: Fields, size: int) -> tuple[str, ...]:
    """The Poseidon commitments of a key made for zero-knowledge verification: one decimal field element each."""
    zk = f.object("zk")
    if set(zk.obj) != {"hash", "commitments"}:
        raise f.fail("zk", 'must hold exactly "hash" and "commitments"')
    zk.str("hash", choices=(ZK_HASH,))
    values = zk.str_list("commitments", length=size)
    for i, value in enumerate(values):
        if not _DECIMAL_FIELD.fullmatch(value):
            raise zk.fail("commitments", f"entry {i} must be a decimal number of at most 77 digits")
    return tuple(values)


def load_marking_key(path: str | Path) -> MarkingKey:
    """The secret marking key from a key directory, every field and tensor checked."""
    json_path = _key_path(path, MK_FILE)
    f = Fields(read_json_object(json_path), json_path)
    f.expect_format(MK_FORMAT)
    allowed = {
        "format",
        "version",
        "modeldeed_version",
        "key_id",
        "scheme",
        "classes",
        "input_shape",
        "size",
        "sets",
        "trigger_source",
        "labels",
        "image_nonces",
        "label_nonces",
        "challenge",
    }
    _refuse_unknown(f, allowed)
    scheme, classes, shape, size, sets, source = _common_fields(f)
    labels = _labels(f, "labels", size, len(classes))
    image_nonces = _hex_list(f, "image_nonces", size, NONCE_BYTES)
    label_nonces = _hex_list(f, "label_nonces", size, NONCE_BYTES)
    challenge = None
    if scheme == "cut-and-choose":
        challenge = tuple(int(c) for c in f.str("challenge", pattern=f"[01]{{{size}}}"))
    elif f.has("challenge"):
        raise f.fail("challenge", f"belongs only in a cut-and-choose key, not a {scheme} key")
    images = _images(json_path.parent / MK_TENSORS, "images", size, shape)
    return MarkingKey(
        f.hex64("key_id"),
        scheme,
        classes,
        shape,
        images,
        torch.tensor(labels, dtype=torch.int64),
        image_nonces,
        label_nonces,
        challenge,
        sets,
        source,
    )


def load_key_pair(directory: str | Path) -> tuple[MarkingKey, VerificationKey]:
    return load_marking_key(directory), load_verification_key(directory)
