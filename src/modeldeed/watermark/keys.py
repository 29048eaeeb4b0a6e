"""The marking key (secret) and verification key (public): in memory, and on disk without pickle.

Why so strict on load: a verifier opens keys that an adversary may have written. Both JSON files are read
through the bounded readers of `modeldeed.files` (regular files inside the key directory, size and depth
bounded) and validated as the declared models of `documents`; tensors come from safetensors only, with a size
bound computed from the validated shape. The key id is the digest of the validated verification key, so
nothing can ride along unhashed. The byte layouts are specified in docs/formats.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..crypto import NONCE_BYTES, challenge_bits, commit, encode_label, encode_tensor, open_commitment, tagged_digest
from ..errors import FormatError, ModeldeedError, file_error
from ..files import canonical_json, read_safetensors, safetensors_bound, write_json_atomic, write_safetensors_atomic
from .documents import (
    MK_FORMAT,
    VK_FORMAT,
    ZK_HASH,
    MarkingKeyDocument,
    VerificationKeyDocument,
    build_document,
    read_document,
)
from .labels import derive_labels
from .limits import check_trigger_budget

VK_FILE, VK_TENSORS = "verification_key.json", "verification_key.safetensors"
MK_FILE, MK_TENSORS = "marking_key.json", "marking_key.safetensors"
TRIGGER_PNG_DIR = "triggers"
VK_TAG = b"modeldeed/verification-key/v1"
SCHEMES = ("private", "cut-and-choose", "bounded")
SOURCES = ("abstract", "images")
LABEL_KINDS = ("derived", "chosen")


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
        """Every element that does not open its commitments, or whose label is not the derived one."""
        problems = []
        derived = vk.derived_labels() if vk.label_kind == "derived" else None
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
            if derived is not None and self.labels[j] != derived[i]:
                problems.append(
                    f"trigger {i}: label {self.labels[j]} is not the label derived from the image commitments "
                    f"({derived[i]}); a key marked 'derived' must carry exactly those"
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
    """Public: commitments to every trigger image and label, the acceptance rule, what the key fits.

    `label_kind` is the file's `labels` field: "derived" (each set's labels follow from its image commitments,
    see `labels`) or "chosen" (the key's maker picked them, e.g. `keygen --labels FILE`).
    """

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
    label_kind: str = "derived"
    demonstration_seed: int | None = None  # a demonstration key: every secret follows from this public seed
    zk_commitments: tuple[str, ...] | None = None  # keys for modeldeed.zk: one Poseidon commitment per trigger

    @property
    def size(self) -> int:
        return len(self.image_commitments)

    @property
    def set_size(self) -> int:
        return self.size // self.sets

    @property
    def demonstration(self) -> bool:
        return self.demonstration_seed is not None

    def set_indices(self, index: int) -> range:
        return range(index * self.set_size, (index + 1) * self.set_size)

    @functools.cached_property
    def document(self) -> VerificationKeyDocument:
        """The validated document: what is written, and (without `opened`) what the key id hashes."""
        fields: dict[str, Any] = {
            "format": VK_FORMAT,
            "version": 2,
            "modeldeed_version": self.modeldeed_version,
            "scheme": self.scheme,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "epsilon": float(self.epsilon),
            "size": self.size,
            "sets": self.sets,
            "created": self.created,
            "trigger_source": self.trigger_source,
            "labels": self.label_kind,
            "commitment": {"hash": "sha256", "nonce_bytes": NONCE_BYTES},
            "image_commitments": list(self.image_commitments),
            "label_commitments": list(self.label_commitments),
        }
        if self.demonstration_seed is not None:
            fields["demonstration_seed"] = self.demonstration_seed
        if self.security_bits is not None:
            fields["security_bits"] = self.security_bits
        if self.opened is not None:
            fields["opened"] = self.opened.to_json()
        if self.zk_commitments is not None:
            fields["zk"] = {"hash": ZK_HASH, "commitments": list(self.zk_commitments)}
        return build_document(VerificationKeyDocument, fields, complete=self.opened is not None)

    def core_json(self) -> dict[str, Any]:
        """Every validated field but the opened half: what the key id, and so the Fiat-Shamir challenge, hash.

        An optional section added to the format later (e.g. ZK-friendly commitments) is covered by the id as
        soon as it is present, and leaves the id of keys without it unchanged.
        """
        return self.document.model_dump(exclude={"opened"}, exclude_none=True)

    def to_json(self) -> dict[str, Any]:
        return self.document.model_dump(exclude_none=True)

    def canonical_bytes(self) -> bytes:
        """The whole validated key (opened half included) as canonical JSON, e.g. to register its SHA-256."""
        return canonical_json(self.to_json())

    @functools.cached_property
    def key_id(self) -> str:
        return tagged_digest(VK_TAG, canonical_json(self.core_json())).hex()

    def challenge(self) -> tuple[int, ...]:
        """e = H(vk), one bit per trigger: 1 = opened in the public key, 0 = kept secret and embedded."""
        return challenge_bits(bytes.fromhex(self.key_id), self.size)

    def derived_labels(self) -> list[int]:
        """The labels that the image commitments dictate, set by set (whatever `label_kind` says)."""
        return list(self._derived)

    @functools.cached_property
    def _derived(self) -> tuple[int, ...]:
        return tuple(derive_labels(self.image_commitments, len(self.classes), sets=self.sets))

    @classmethod
    def from_document(cls, doc: VerificationKeyDocument, opened: Opening | None) -> VerificationKey:
        vk = cls(
            doc.scheme,
            tuple(doc.classes),
            (doc.input_shape[0], doc.input_shape[1], doc.input_shape[2]),
            doc.epsilon,
            tuple(doc.image_commitments),
            tuple(doc.label_commitments),
            doc.created,
            doc.trigger_source,
            doc.security_bits,
            doc.sets,
            opened,
            doc.modeldeed_version,
            doc.labels,
            doc.demonstration_seed,
            tuple(doc.zk.commitments) if doc.zk is not None else None,
        )
        vk.__dict__["document"] = doc  # the id is the digest of exactly what was validated
        return vk


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
        fields: dict[str, Any] = {
            "format": MK_FORMAT,
            "version": 2,
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
            fields["challenge"] = "".join(map(str, self.challenge))
        return build_document(MarkingKeyDocument, fields).model_dump(exclude_none=True)


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


def key_path(path: str | Path, name: str) -> tuple[Path, Path]:
    """(the file `name` of a key directory, the directory): `path` is the directory or a file in it."""
    path = Path(path)
    if path.is_dir():
        return path / name, path
    if path.is_file() or path.is_symlink():
        return (path if path.name == name else path.parent / name), path.parent
    raise file_error(FormatError, path, "key directory not found")


def read_images(path: Path, name: str, count: int, shape: Sequence[int], *, within: Path) -> torch.Tensor:
    """Exactly one float32 tensor `name` of count×C×H×W pixels in [0, 1], its file bounded by that size first."""
    try:
        need = check_trigger_budget(count, shape) if count else 0
    except ModeldeedError as exc:
        raise file_error(FormatError, path, str(exc)) from None
    tensors = read_safetensors(path, max_bytes=safetensors_bound(need), within=within)
    return checked_images(tensors, path, name, count, shape)


def checked_images(
    tensors: dict[str, torch.Tensor], path: Path, name: str, count: int, shape: Sequence[int]
) -> torch.Tensor:
    if set(tensors) != {name}:
        raise file_error(FormatError, path, f"must hold exactly one tensor {name!r}, found {sorted(tensors)[:8]}")
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


def opening_of(doc: Any, images: torch.Tensor) -> Opening:
    """An Opening from a validated document with `indices`, `labels` and both nonce lists."""
    return Opening(
        tuple(doc.indices),
        images,
        tuple(doc.labels),
        tuple(bytes.fromhex(n) for n in doc.image_nonces),
        tuple(bytes.fromhex(n) for n in doc.label_nonces),
    )


def load_verification_key(path: str | Path) -> VerificationKey:
    """A verification key from its directory (or its `verification_key.json`), every field checked."""
    json_path, directory = key_path(path, VK_FILE)
    doc = read_document(VerificationKeyDocument, json_path, within=directory)
    opened = None
    if doc.opened is not None:
        shape = tuple(doc.input_shape)
        images = read_images(directory / VK_TENSORS, "opened_images", len(doc.opened.indices), shape, within=directory)
        opened = opening_of(doc.opened, images)
    return VerificationKey.from_document(doc, opened)


def load_marking_key(path: str | Path) -> MarkingKey:
    """The secret marking key from a key directory, every field and tensor checked."""
    json_path, directory = key_path(path, MK_FILE)
    doc = read_document(MarkingKeyDocument, json_path, within=directory)
    shape = (doc.input_shape[0], doc.input_shape[1], doc.input_shape[2])
    images = read_images(directory / MK_TENSORS, "images", doc.size, shape, within=directory)
    return MarkingKey(
        doc.key_id,
        doc.scheme,
        tuple(doc.classes),
        shape,
        images,
        torch.tensor(doc.labels, dtype=torch.int64),
        tuple(bytes.fromhex(n) for n in doc.image_nonces),
        tuple(bytes.fromhex(n) for n in doc.label_nonces),
        tuple(int(c) for c in doc.challenge) if doc.challenge is not None else None,
        doc.sets,
        doc.trigger_source,
    )


def load_key_pair(directory: str | Path) -> tuple[MarkingKey, VerificationKey]:
    return load_marking_key(directory), load_verification_key(directory)
