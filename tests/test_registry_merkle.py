"""RFC 6962 Merkle tree: the reference test vectors, a plain recursive reference, and hostile proofs."""

from __future__ import annotations

import hashlib

import pytest

from modeldeed.registry import merkle

# The certificate-transparency reference test data (leaf inputs, roots of the trees of size 0..8, audit
# paths and consistency proofs), as used by RFC 6962 implementations (transparency-dev/merkle testonly).
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (0-based leaf index, tree size, audit path)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


class MemoryTree:
    """A tree held in memory through the same CompactRange a log uses; a dict is its node store."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[merkle.NodeId, bytes] = {}
        self.range = merkle.CompactRange()
        for data in leaves:
            self.nodes.update(self.range.append(merkle.leaf_hash(data)))

    def read(self, ids):
        return [self.nodes[i] for i in ids]


# A plain transcription of RFC 6962 §2.1 (MTH, PATH, SUBPROOF), to check the planned, stored version against.
def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return merkle.leaf_hash(d[0])
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return merkle.node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return ref_path(m, d[:k]) + [ref_mth(d[k:])] if m < k else ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [ref_mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return ref_subproof(m, d[:k], whole) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def test_roots_match_the_reference_vectors():
    for size, root in enumerate(ROOTS):
        tree = MemoryTree(LEAVES[:size])
        assert tree.range.root().hex() == root
        assert merkle.root_from_nodes(size, tree.read).hex() == root


def test_audit_paths_match_the_reference_vectors_and_verify():
    tree = MemoryTree(LEAVES)
    for index, size, path in INCLUSION:
        assert [h.hex() for h in merkle.inclusion_proof(index, size, tree.read)] == path
        leaf = merkle.leaf_hash(LEAVES[index])
        assert merkle.verify_inclusion(index, size, leaf, [bytes.fromhex(h) for h in path], bytes.fromhex(ROOTS[size]))


def test_consistency_proofs_match_the_reference_vectors_and_verify():
    tree = MemoryTree(LEAVES)
    for first, second, proof in CONSISTENCY:
        assert [h.hex() for h in merkle.consistency_proof(first, second, tree.read)] == proof
        hashes = [bytes.fromhex(h) for h in proof]
        assert merkle.verify_consistency(
            first, second, bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second]), hashes
        )


def test_every_size_up_to_70_agrees_with_the_recursive_reference():
    data = [i.to_bytes(2, "big") for i in range(70)]
    tree = MemoryTree(data)
    for size in range(1, 71):
        root = ref_mth(data[:size])
        assert merkle.root_from_nodes(size, tree.read) == root
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, tree.read)
            assert proof == ref_path(index, data[:size])
            assert merkle.verify_inclusion(index, size, merkle.leaf_hash(data[index]), proof, root)
        for first in range(1, size):
            proof = merkle.consistency_proof(first, size, tree.read)
            assert proof == ref_subproof(first, data[:size], True)
            assert merkle.verify_consistency(first, size, ref_mth(data[:first]), root, proof)


def _inclusion_probes(index, size, leaf, proof, root):
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield index - 1, size, leaf, proof, root
    yield index + 1, size, leaf, proof, root
    yield index ^ 2, size, leaf, proof, root
    yield index, size * 2, leaf, proof, root
    yield index, size // 2, leaf, proof, root
    yield index, size, merkle.leaf_hash(b"WrongLeaf"), proof, root
    yield index, size, leaf, proof, merkle.EMPTY_ROOT
    yield index, size, leaf, proof, some
    yield index, size, leaf, [*proof, b""], root
    yield index, size, leaf, [*proof, root], root
    yield index, size, leaf, [root, *proof], root
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        yield index, size, leaf, flipped, root
    if proof:
        yield index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], some, *proof[1:]], root


def test_corrupted_inclusion_proofs_are_rejected():
    tree = MemoryTree(LEAVES)
    for index, size, _ in INCLUSION[1:]:
        proof = merkle.inclusion_proof(index, size, tree.read)
        root = bytes.fromhex(ROOTS[size])
        leaf = merkle.leaf_hash(LEAVES[index])
        for probe in _inclusion_probes(index, size, leaf, proof, root):
            assert not merkle.verify_inclusion(*probe), probe[:2]


def test_corrupted_consistency_proofs_are_rejected():
    tree = MemoryTree(LEAVES)
    for first, second, _ in CONSISTENCY[1:]:
        proof = merkle.consistency_proof(first, second, tree.read)
        r1, r2 = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
        probes = [
            (first - 1, second, r1, r2, proof),
            (first + 1, second, r1, r2, proof),
            (first ^ 2, second, r1, r2, proof),
            (first, second * 2, r1, r2, proof),
            (first, second // 2, r1, r2, proof),
            (first, second, merkle.leaf_hash(b"WrongRoot"), r2, proof),
            (first, second, r1, merkle.leaf_hash(b"WrongRoot"), proof),
            (first, second, r2, r1, proof),
            (first, second, r1, r2, []),
            (first, second, r1, r2, [*proof, b""]),
            (first, second, r1, r2, [*proof, r1]),
            (first, second, r1, r2, [*proof, r2]),
            (first, second, r1, r2, [r1, *proof]),
            (first, second, r1, r2, [r2, *proof]),
            (first, second, r1, r2, [proof[0], *proof]),
            (first, second, r1, r2, proof[:-1]),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
            probes.append((first, second, r1, r2, flipped))
        for probe in probes:
            assert not merkle.verify_consistency(*probe), probe[:2]


def test_trivial_consistency_cases():
    r1, r2 = merkle.leaf_hash(b"1"), merkle.leaf_hash(b"2")
    assert merkle.verify_consistency(0, 0, r1, r1, [])
    assert merkle.verify_consistency(0, 5, r1, r2, [])
    assert merkle.verify_consistency(3, 3, r2, r2, [])
    assert not merkle.verify_consistency(3, 3, r1, r2, [])  # same size, two roots: equivocation
    assert not merkle.verify_consistency(0, 5, r1, r2, [r1])
    assert not merkle.verify_consistency(5, 3, r1, r2, [r1])  # time travel
    assert not merkle.verify_consistency(1, 2, r1, r2, [])


def test_bad_sizes_are_refused_when_generating_and_false_when_verifying():
    tree = MemoryTree(LEAVES)
    with pytest.raises(ValueError):
        merkle.inclusion_proof(8, 8, tree.read)
    with pytest.raises(ValueError):
        merkle.consistency_proof(5, 3, tree.read)
    with pytest.raises(ValueError):
        merkle.inclusion_proof(-1, 8, tree.read)
    leaf = merkle.leaf_hash(LEAVES[0])
    assert not merkle.verify_inclusion(0, 0, leaf, [], leaf)
    assert not merkle.verify_inclusion(0, 2**64, leaf, [], leaf)
    assert not merkle.verify_inclusion(0, 1, leaf[:31], [], leaf)


def test_compact_range_stores_each_perfect_subtree_once():
    tree = MemoryTree([i.to_bytes(2, "big") for i in range(1000)])
    assert len(tree.nodes) == 2 * 1000 - bin(1000).count("1")
    reloaded = merkle.CompactRange.load(1000, tree.read)
    assert reloaded.root() == tree.range.root()
    reloaded.append(merkle.leaf_hash(b"next"))
    assert reloaded.root() == ref_mth([i.to_bytes(2, "big") for i in range(1000)] + [b"next"])


def test_proofs_are_logarithmic_in_size_and_reads():
    reads: list[int] = []
    tree = MemoryTree([i.to_bytes(4, "big") for i in range(5000)])

    def counting(ids):
        reads.append(len(ids))
        return tree.read(ids)

    proof = merkle.inclusion_proof(4321, 5000, counting)
    assert len(proof) <= 13  # ceil(log2(5000))
    assert len(reads) == 1 and reads[0] <= 2 * 13  # one batched read of at most 2 log2(n) stored nodes
    assert len(merkle.consistency_proof(3001, 5000, counting)) <= 2 * 13
    assert len(reads) == 2 and reads[1] <= 3 * 13
