"""The parts of the spoofs and of the hardened verifier, one property at a time (no training)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeldeed.attacks.pol_spoof import interpolate_state, plan_epochs, state_of
from modeldeed.attacks.pol_spoof_zhang import craft_noise, needed_gradient
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol.merkle import (
    LEAF_TAG,
    MembershipProof,
    MerkleTree,
    empty_root,
    encode_sample,
    leaf_hash,
    leaf_hashes,
    node_hash,
    verify_membership,
)
from modeldeed.training import TrainConfig, make_optimizer


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


# ------------------------------------------------------------------------------------------------- Merkle


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_every_leaf_proves_membership_and_nothing_else_does(n):
    tree = MerkleTree(leaves(n))
    for i, leaf in enumerate(leaves(n)):
        proof = tree.prove(i)
        assert verify_membership(tree.root, leaf, proof)
        assert not verify_membership(tree.root, hashlib.sha256(b"other").digest(), proof)
        if n > 1:
            moved = MembershipProof((i + 1) % n, n, proof.siblings)
            assert not verify_membership(tree.root, leaf, moved)
            if proof.siblings:
                bent = (bytes(32),) + proof.siblings[1:]
                assert not verify_membership(tree.root, leaf, MembershipProof(i, n, bent))
        assert not verify_membership(tree.root, leaf, MembershipProof(i, n, proof.siblings + (bytes(32),)))


def test_merkle_root_golden_values():
    a, b, c = leaves(3)
    assert MerkleTree([a]).root == a
    assert MerkleTree([a, b]).root == node_hash(a, b)
    assert MerkleTree([a, b, c]).root == node_hash(node_hash(a, b), c)  # the odd node is promoted, not doubled
    assert MerkleTree([]).root == empty_root() != MerkleTree([a]).root
    assert node_hash(a, b) == hashlib.sha256(b"modeldeed/merkle-node/v1\x00" + a + b).digest()


def test_leaf_encoding_binds_bytes_shape_and_label():
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    assert leaf_hash(x, 3) == hashlib.sha256(b"modeldeed/pol-sample/v1\x00" + encode_sample(x, 3)).digest()
    assert LEAF_TAG == b"modeldeed/pol-sample/v1"
    assert encode_sample(x, 3) == (
        b"A\x03<f4\x03"
        + (1).to_bytes(8, "big")
        + (2).to_bytes(8, "big")
        + (2).to_bytes(8, "big")
        + x.tobytes()
        + b"L"
        + (3).to_bytes(8, "big")
    )
    assert leaf_hash(x, 3) != leaf_hash(x, 4)
    assert leaf_hash(x, 3) != leaf_hash(x.reshape(1, 4, 1), 3)
    changed = x.copy()
    changed[0, 1, 1] = np.nextafter(changed[0, 1, 1], np.float32(10))
    assert leaf_hash(x, 3) != leaf_hash(changed, 3)
    batch = leaf_hashes(torch.from_numpy(np.stack([x, changed])), torch.tensor([3, 3]))
    assert batch == [leaf_hash(x, 3), leaf_hash(changed, 3)]


def test_membership_proof_json_round_trip_and_malformed():
    tree = MerkleTree(leaves(6))
    proof = tree.prove(4)
    assert MembershipProof.from_json(proof.to_json()) == proof
    for bad in (
        {"index": 7, "size": 6, "siblings": []},
        {"index": 0, "size": 1, "siblings": ["zz"]},
        [],
        {"index": True, "size": 2, "siblings": []},
    ):
        with pytest.raises(ValueError):
            MembershipProof.from_json(bad)


def test_tree_finds_samples(digits):
    data = digits.train.subset(range(20))
    tree = MerkleTree.from_samples(data.x, data.y)
    assert tree.find(leaf_hash(data.x[7].numpy(), int(data.y[7]))) == 7
    assert tree.find(leaf_hash((data.x[7] * 0.5).numpy(), int(data.y[7]))) is None


# -------------------------------------------------------------------------------------- spoof machinery


@pytest.fixture()
def tiny(digits):
    spec = spec_for_data("cnn", digits.train.input_shape, digits.train.num_classes, {"width": 4})
    return spec, build_model(spec, seed=0)


def test_needed_gradient_makes_the_momentum_step_land_on_the_target(tiny, digits):
    """With momentum and weight decay an SGD step is not -lr*grad; g* accounts for both."""
    _, model = tiny
    config = TrainConfig(lr=0.05, momentum=0.9, weight_decay=5e-4)
    optimizer = make_optimizer(model.parameters(), config)
    x, y = digits.train.x[:16], digits.train.y[:16]
    for _ in range(2):  # give the optimizer a real momentum buffer
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    params = list(model.parameters())
    target = [p.detach() + 0.01 * torch.randn_like(p) for p in params]
    wanted = needed_gradient(model, optimizer, target, 0.05)
    for p, g in zip(params, wanted):
        p.grad = g.clone()
    optimizer.step()
    for p, t in zip(params, target):
        assert torch.allclose(p.detach(), t, atol=1e-6)


def test_craft_noise_lowers_the_gradient_and_respects_lambda(tiny, digits):
    _, model = tiny
    x, y = digits.train.x[:16], digits.train.y[:16]
    before = sum(
        float((g**2).sum()) for g in torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    )
    inputs, gap, noise, evaluations = craft_noise(
        model, x, y, None, lam=0.1, iterations=10, rounds=1, tolerance_grad=1e-9
    )
    assert evaluations > 1 and gap < before and noise > 0
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    _, _, heavy_noise, _ = craft_noise(model, x, y, None, lam=1e6, iterations=10, rounds=1, tolerance_grad=1e-9)
    assert heavy_noise < noise


def test_interpolation_and_planning(tiny):
    spec, model = tiny
    a = state_of(model)
    b = state_of(build_model(spec, seed=1))
    assert all(torch.equal(interpolate_state(a, b, 0.0)[k], a[k]) for k in a)
    assert all(torch.equal(interpolate_state(a, b, 1.0)[k], b[k]) for k in a)
    mid = interpolate_state(a, b, 0.5)
    assert all(torch.allclose(mid[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a)
    loose = plan_epochs(model, a, b, {"l2": 100.0}, margin=0.5, k=5, steps_per_epoch=10)
    tight = plan_epochs(model, a, b, {"l2": 0.1}, margin=0.5, k=5, steps_per_epoch=10)
    assert loose == 1 and tight > loose
