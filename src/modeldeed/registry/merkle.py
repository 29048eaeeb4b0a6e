"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs: generation and verification.

    leaf hash   = SHA-256(0x00 ‖ leaf data)
    node hash   = SHA-256(0x01 ‖ left ‖ right)
    MTH({})     = SHA-256()                              (the empty tree)
    MTH(D[n])   = node(MTH(D[0:k]), MTH(D[k:n])),  k the largest power of two < n

Why the plans below: every subtree the RFC's recursion touches, D[a:b], starts at a multiple of a power of
two at least b - a, so its hash is the right fold of at most log2(n) *perfect* subtrees (size 2^h, aligned
at a multiple of 2^h). A log that stores the hash of every perfect subtree (`NodeId(level, index)`, index =
offset >> level) therefore answers any root, inclusion or consistency question with O(log n) reads and no
recomputation over the leaves. Generation here is written as "which perfect subtrees do I need" (a plan)
plus one batched read (`NodeReader`), so a database backend can fetch a whole proof in one query.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step; it never
raises on a hostile proof, it returns False.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = 2**63 - 1  # sizes and indices travel as signed 64-bit integers in both databases


class NodeId(NamedTuple):
    """A perfect subtree: leaves [index * 2^level, (index + 1) * 2^level)."""

    level: int
    index: int


NodeReader = Callable[[Sequence[NodeId]], Sequence[bytes]]
"""Returns the hashes of the given perfect subtrees, in the order asked (a storage backend or a dict)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees, left to right, whose right fold is MTH(D[start:end]).

    Requires start to be a multiple of a power of two >= end - start (true of every subtree of an RFC 6962
    tree, including the whole tree at start = 0).
    """
    nodes: list[NodeId] = []
    offset, remaining = start, end - start
    while remaining:
        level = remaining.bit_length() - 1
        if offset % (1 << level):
            raise ValueError(f"D[{start}:{end}] is not a subtree of an RFC 6962 tree")
        nodes.append(NodeId(level, offset >> level))
        offset += 1 << level
        remaining -= 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of perfect-subtree hashes: h0, h1, h2 -> node(h0, node(h1, h2)). Empty -> EMPTY_ROOT."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _check_size(size: int, what: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_TREE_SIZE:
        raise ValueError(f"{what} must be an integer from 0 to 2^63 - 1, got {size!r}")


def inclusion_plan(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges D[a:b] whose hashes make the audit path of leaf `index` in a tree of `size` (RFC 6962 PATH),
    in proof order (from the leaf up)."""
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    plan: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_below(hi - lo)
        if index - lo < k:
            plan.append((lo + k, hi))
            hi = lo + k
        else:
            plan.append((lo, lo + k))
            lo += k
    plan.reverse()
    return plan


def consistency_plan(first: int, second: int) -> list[tuple[int, int]]:
    """The ranges whose hashes prove that the tree of size `first` is a prefix of the tree of size `second`
    (RFC 6962 PROOF(m, D[n]) = SUBPROOF(m, D[n], true)), in proof order. Empty when first is 0 or equal."""
    _check_size(first, "first tree size")
    _check_size(second, "second tree size")
    if first > second:
        raise ValueError(f"no consistency proof from size {first} back to the smaller size {second}")
    if first == 0 or first == second:
        return []
    plan: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        if m == hi - lo:
            if not whole:
                plan.append((lo, hi))
            break
        k = _largest_power_below(hi - lo)
        if m <= k:
            plan.append((lo + k, hi))
            hi = lo + k
        else:
            plan.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    plan.reverse()
    return plan


def hashes_for(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """Resolve ranges to hashes with one call to `read` for all the perfect subtrees they need."""
    per_range = [range_nodes(a, b) for a, b in ranges]
    wanted = sorted({node for nodes in per_range for node in nodes})
    found = dict(zip(wanted, read(wanted)))
    if len(found) != len(wanted):
        raise LookupError("the node store returned fewer hashes than were asked for")
    return [fold([found[node] for node in nodes]) for nodes in per_range]


def root_from_nodes(size: int, read: NodeReader) -> bytes:
    _check_size(size, "tree size")
    return hashes_for([(0, size)], read)[0] if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    return hashes_for(inclusion_plan(index, size), read)


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    return hashes_for(consistency_plan(first, second), read)


# ---------------------------------------------------------------------------------------- verification


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root that `proof` leads to from leaf hash `leaf`, or None if it cannot be one."""
    if not (0 <= index < size <= MAX_TREE_SIZE) or len(leaf) != HASH_SIZE:
        return None
    if any(len(p) != HASH_SIZE for p in proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _skip_right_edge(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _skip_right_edge(fn: int, sn: int) -> tuple[int, int]:
    """RFC 9162's "if LSB(fn) is not set, right-shift both until LSB(fn) is set or fn is 0": levels where
    the path's node is the last of its level and has no sibling contribute no hash."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    return computed is not None and hmac.compare_digest(computed, root)


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, with the trivial cases: size 0 is a prefix of anything (empty proof); equal sizes
    need equal roots and an empty proof."""
    if not (0 <= first <= second <= MAX_TREE_SIZE):
        return False
    if any(len(p) != HASH_SIZE for p in proof) or len(first_root) != HASH_SIZE or len(second_root) != HASH_SIZE:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _skip_right_edge(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)


# ---------------------------------------------------------------------------------------- the frontier


class CompactRange:
    """The right edge of a growing tree: one perfect-subtree hash per set bit of its size.

    Appending a leaf costs O(1) amortised hashes and reports every perfect subtree it completes, which is
    exactly what a store of interior nodes must write. The root is the fold of the frontier.
    """

    def __init__(self, size: int = 0, frontier: Iterable[bytes] = ()) -> None:
        self.size = size
        self.frontier = list(frontier)
        if len(self.frontier) != bin(size).count("1"):
            raise ValueError(f"a tree of size {size} has {bin(size).count('1')} frontier hashes")

    @classmethod
    def load(cls, size: int, read: NodeReader) -> CompactRange:
        nodes = range_nodes(0, size)
        return cls(size, read(nodes) if nodes else [])

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf hash; returns the new perfect subtrees (the leaf itself first), for storage."""
        created = [(NodeId(0, self.size), leaf)]
        self.frontier.append(leaf)
        level, index = 0, self.size
        while index & 1:
            right = self.frontier.pop()
            left = self.frontier.pop()
            level, index = level + 1, index >> 1
            parent = node_hash(left, right)
            self.frontier.append(parent)
            created.append((NodeId(level, index), parent))
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold(self.frontier)
