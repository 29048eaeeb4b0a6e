"""A Merkle tree over the exact training samples, and membership proofs against its root.

The owner of a model publishes the root before training (inside a `TrainingStatement`); a verifier who
trusts that root can then check that every sample a proof replays is one of the committed samples, without
holding the dataset: the prover hands over the sample and its path of sibling hashes.

Byte layout (also in docs/formats.md):

    leaf(x, y) = SHA-256("modeldeed/pol-sample/v1" ‖ 0x00 ‖ enc(x) ‖ enc(y))
        enc(x) = b"A" ‖ u8(len(dtype)) ‖ dtype ("<f4") ‖ u8(ndim) ‖ u64be(dim) per axis ‖ raw little-endian bytes
        enc(y) = b"L" ‖ u64be(label)
    node(l, r) = SHA-256("modeldeed/merkle-node/v1" ‖ 0x00 ‖ l ‖ r)

Levels are built pairwise from the leaves in dataset order; a level with an odd number of nodes promotes
its last node unchanged to the next level (no duplication, so no two different leaf lists share a root).
Leaves and inner nodes use different domain tags, so an inner node can never pass as a leaf. The root of
the empty list is SHA-256("modeldeed/merkle-empty/v1" ‖ 0x00). Every hash is `crypto.tagged_digest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..crypto import tagged_digest

LEAF_TAG = b"modeldeed/pol-sample/v1"
NODE_TAG = b"modeldeed/merkle-node/v1"
EMPTY_TAG = b"modeldeed/merkle-empty/v1"
DIGEST_SIZE = 32


def _u64(value: int) -> bytes:
    return int(value).to_bytes(8, "big")


def encode_sample(x: np.ndarray, label: int) -> bytes:
    """Canonical bytes of one sample: its image as little-endian float32 with shape, then its label."""
    array = np.ascontiguousarray(x, dtype="<f4")
    dtype = array.dtype.str.encode("ascii")
    header = b"A" + bytes([len(dtype)]) + dtype + bytes([array.ndim]) + b"".join(_u64(d) for d in array.shape)
    return header + array.tobytes() + b"L" + _u64(label)


def leaf_hash(x: np.ndarray, label: int) -> bytes:
    return tagged_digest(LEAF_TAG, encode_sample(x, label))


def leaf_hashes(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """The leaf of every sample of a batch (N×C×H×W float32 images, N labels), in order."""
    xs = x.detach().to("cpu", torch.float32).contiguous().numpy()
    ys = y.detach().to("cpu").numpy()
    return [leaf_hash(xs[i], int(ys[i])) for i in range(len(ys))]


def node_hash(left: bytes, right: bytes) -> bytes:
    return tagged_digest(NODE_TAG, left + right)


STREAM_CHUNK = 1024


def streaming_root(x: torch.Tensor, y: torch.Tensor, chunk: int = STREAM_CHUNK) -> bytes:
    """`MerkleTree.from_samples(x, y).root`, in one pass over chunks of samples with one pending node per level.

    Memory stays at a chunk of samples plus O(log n) hashes, so a memory-mapped dataset is read once and never
    held. Equal to the full tree's root: at the end, a level's pending left node is joined with what rises from
    below, and a node with no partner rises unchanged (the tree's promotion of an odd last node).
    """
    pending: list[bytes | None] = []
    for start in range(0, len(y), chunk):
        for leaf in leaf_hashes(x[start : start + chunk], y[start : start + chunk]):
            node, level = leaf, 0
            while True:
                if level == len(pending):
                    pending.append(None)
                left = pending[level]
                if left is None:
                    pending[level] = node
                    break
                pending[level] = None
                node, level = node_hash(left, node), level + 1
    if not pending:
        return empty_root()
    carry: bytes | None = None
    for left in pending:
        if left is not None:
            carry = left if carry is None else node_hash(left, carry)
    assert carry is not None
    return carry


def empty_root() -> bytes:
    return tagged_digest(EMPTY_TAG, b"")


@dataclass(frozen=True)
class MembershipProof:
    """Sample `index` of a tree over `size` leaves, and the sibling hashes from the leaf up to the root.

    Levels where the path's node was promoted (the odd last node) contribute no sibling.
    """

    index: int
    size: int
    siblings: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "size": self.size, "siblings": [s.hex() for s in self.siblings]}

    @classmethod
    def from_json(cls, doc: object) -> MembershipProof:
        """Parse a proof; raises ValueError with the reason when it is malformed."""
        if not isinstance(doc, dict):
            raise ValueError("a membership proof must be a JSON object")
        index, size, siblings = doc.get("index"), doc.get("size"), doc.get("siblings")
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("a membership proof needs integer 'index' and 'size'")
        if not 0 <= index < size:
            raise ValueError(f"index {index} outside a tree of {size} leaves")
        if not isinstance(siblings, list) or len(siblings) > 64:
            raise ValueError("'siblings' must be a list of at most 64 hashes")
        parsed = []
        for s in siblings:
            if not isinstance(s, str) or len(s) != 2 * DIGEST_SIZE:
                raise ValueError("every sibling must be 64 hex digits")
            try:
                parsed.append(bytes.fromhex(s))
            except ValueError:
                raise ValueError("every sibling must be 64 hex digits") from None
        return cls(index, size, tuple(parsed))


class MerkleTree:
    """All levels of the tree over `leaves` (level 0 = the leaves), for the root and for membership proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            if len(leaf) != DIGEST_SIZE:
                raise ValueError("every leaf must be a 32-byte SHA-256 digest")
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            self.levels.append(above)
        self._index: dict[bytes, int] | None = None

    @classmethod
    def from_samples(cls, x: torch.Tensor, y: torch.Tensor) -> MerkleTree:
        return cls(leaf_hashes(x, y))

    @property
    def size(self) -> int:
        return len(self.levels[0])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else empty_root()

    def find(self, leaf: bytes) -> int | None:
        """The index of a leaf in the tree (its first occurrence), or None."""
        if self._index is None:
            self._index = {}
            for i, h in enumerate(self.levels[0]):
                self._index.setdefault(h, i)
        return self._index.get(leaf)

    def prove(self, index: int) -> MembershipProof:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} outside a tree of {self.size} leaves")
        siblings = []
        position = index
        for level in self.levels[:-1]:
            mate = position ^ 1
            if mate < len(level):
                siblings.append(level[mate])
            position //= 2
        return MembershipProof(index, self.size, tuple(siblings))


def verify_membership(root: bytes, leaf: bytes, proof: MembershipProof) -> bool:
    """True iff `leaf` sits at `proof.index` of a tree of `proof.size` leaves whose root is `root`."""
    if proof.size < 1 or not 0 <= proof.index < proof.size:
        return False
    node, position, width = leaf, proof.index, proof.size
    siblings = iter(proof.siblings)
    used = 0
    while width > 1:
        mate = position ^ 1
        if mate < width:
            sibling = next(siblings, None)
            if sibling is None:
                return False
            used += 1
            node = node_hash(sibling, node) if position % 2 else node_hash(node, sibling)
        position //= 2
        width = (width + 1) // 2
    return used == len(proof.siblings) and node == root
