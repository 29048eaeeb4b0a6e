"""The statement, the proof commitment and the challenge on their own: exact bytes, bounds, properties (no training)."""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import pytest
import torch

from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.models import spec_for_data
from modeldeed.pol.challenge import (
    challenge_seed,
    challenge_size,
    derive_challenge,
    draw,
    fabricated_count,
    miss_probability,
)
from modeldeed.pol.commitment import checkpoint_leaf, encode_step, steps_leaf
from modeldeed.pol.merkle import MerkleTree
from modeldeed.pol.proof import StepRecord
from modeldeed.pol.state import tensor_digest
from modeldeed.pol.statement import (
    SeedOpening,
    TrainingStatement,
    TriggerSet,
    load_opening,
    load_statement,
    make_statement,
    save_opening,
    save_statement,
    seed_commitment,
)
from modeldeed.training import TrainConfig

ROOT = bytes(range(32))


# ----------------------------------------------------------------------------------------------- challenge


def test_challenge_seed_and_draw_golden_vectors():
    tag = b"modeldeed/pol-challenge/v1\x00"
    expected = hashlib.sha256(tag + ROOT + (10).to_bytes(8, "big") + (3).to_bytes(8, "big") + b"\x00").digest()
    seed = challenge_seed(ROOT, 10, 3, None)
    assert seed == expected
    assert seed.hex() == "12a3bd58c66e1fe070b6c827009127885b55747513b6a498dc368b1caab663d4"
    assert draw(seed, 10, 3) == [0, 3, 8]
    with_beacon = challenge_seed(ROOT, 10, 3, bytes([0xAB] * 32))
    assert (
        with_beacon
        == hashlib.sha256(
            tag + ROOT + (10).to_bytes(8, "big") + (3).to_bytes(8, "big") + b"\x20" + bytes([0xAB] * 32)
        ).digest()
    )
    assert draw(with_beacon, 10, 3) == [2, 6, 8]  # the beacon changes the draw


def test_challenge_size_meets_the_stated_soundness():
    assert [challenge_size(n, 40, 0.5) for n in (10, 23, 50, 100, 200, 1000)] == [6, 12, 24, 31, 35, 39]
    assert [challenge_size(100, 40, f) for f in (0.1, 0.25, 0.5, 1.0)] == [89, 59, 31, 1]
    for n, bits, f in ((100, 40, 0.5), (1000, 40, 0.25), (500, 20, 0.1), (37, 10, 0.3)):
        c = challenge_size(n, bits, f)
        fake = fabricated_count(n, f)
        assert miss_probability(n, fake, c) <= 2.0**-bits < miss_probability(n, fake, c - 1)
        assert miss_probability(n, fake, c) <= (1 - f) ** c  # without replacement is never worse
    assert challenge_size(3, 40, 0.5) == 2  # more than the honest intervals: a draw cannot miss
    for bad in ((0, 40, 0.5), (10, 0, 0.5), (10, 40, 0.0), (10, 40, 1.5)):
        with pytest.raises(ModeldeedError):
            challenge_size(*bad)


def test_draw_is_uniform_distinct_and_depends_only_on_its_inputs():
    picks = np.zeros(20)
    for i in range(600):
        chosen = draw(hashlib.sha256(i.to_bytes(4, "big")).digest(), 20, 5)
        assert chosen == sorted(set(chosen)) and len(chosen) == 5 and all(0 <= c < 20 for c in chosen)
        picks[chosen] += 1
    assert picks.min() > 100 and picks.max() < 200  # expected 150 each
    a = derive_challenge(ROOT, 50)
    assert a.intervals == derive_challenge(ROOT, 50).intervals and a.count == 24 and not a.registered
    assert derive_challenge(ROOT, 50, beacon=b"\x01" * 32).intervals != a.intervals
    assert derive_challenge(bytes(32), 50).intervals != a.intervals
    assert derive_challenge(ROOT, 5).count == 3 and derive_challenge(ROOT, 1).intervals == (0,)  # 3 of 5 must be hit
    doc = a.to_json()
    assert doc["source"] == "offline" and doc["achieved_bits"] >= 40 and "2^g" in a.describe()


# ----------------------------------------------------------------------------------------------- commitment


def test_step_record_encoding_and_leaves_golden_vectors():
    first = StepRecord(np.array([3, 1], dtype=np.int64), (0,), "11" * 32, 0.05, None)
    second = StepRecord(np.array([2], dtype=np.int64), (), "22" * 32, 0.1, 9)
    encoded = encode_step(7, first)
    assert encoded == (
        (7).to_bytes(8, "big")
        + (2).to_bytes(4, "big")
        + (3).to_bytes(8, "big")
        + (1).to_bytes(8, "big")
        + (1).to_bytes(4, "big")
        + (0).to_bytes(8, "big")
        + bytes([0x11] * 32)
        + struct.pack(">d", 0.05)
        + b"\x00"
    )
    assert encode_step(8, second).endswith(struct.pack(">d", 0.1) + b"\x01" + (9).to_bytes(8, "big"))
    leaf = steps_leaf(3, 7, [first, second])
    body = (3).to_bytes(8, "big") + (7).to_bytes(8, "big") + (9).to_bytes(8, "big") + encoded + encode_step(8, second)
    assert leaf == hashlib.sha256(b"modeldeed/pol-steps/v1\x00" + body).digest()
    assert leaf.hex() == "1dff82f276ebce4f0d1fa44ebe1e4eae0d5fc670b97ff92e6734389a56859386"
    assert steps_leaf(3, 7, [first, StepRecord(second.indices, (), "22" * 32, 0.1000001, 9)]) != leaf
    checkpoint = checkpoint_leaf(2, 10, bytes(32), bytes([1] * 32))
    assert checkpoint.hex() == "9b3e5b18a323432115d204d723f31c763fc4c164438435022951c5190d55e97a"


def test_tensor_digest_binds_names_dtypes_shapes_and_bits():
    tensors = {"w": torch.tensor([[0.0, 0.5], [1.0, 0.25]]), "n": torch.tensor(3, dtype=torch.int64)}
    digest = tensor_digest(tensors)
    assert digest.hex() == "ec6d902fe5b8f9cd85676c3231234f63c7d1218918654ae9a2e75bc6b3eb083b"
    manual = hashlib.sha256(b"modeldeed/pol-tensors/v1\x00" + (2).to_bytes(8, "big"))
    manual.update(
        (1).to_bytes(4, "big") + b"n" + b"\x03I64" + b"\x00" + (8).to_bytes(8, "big") + (3).to_bytes(8, "little")
    )
    data = np.array([0.0, 0.5, 1.0, 0.25], dtype="<f4").tobytes()
    manual.update((1).to_bytes(4, "big") + b"w" + b"\x03F32" + b"\x02" + (2).to_bytes(8, "big") * 2)
    manual.update(len(data).to_bytes(8, "big") + data)
    assert digest == manual.digest()
    assert tensor_digest({**tensors, "w": tensors["w"].reshape(4)}) != digest
    assert tensor_digest({**tensors, "w": tensors["w"].double()}) != digest
    assert tensor_digest({"v": tensors["w"], "n": tensors["n"]}) != digest
    negative_zero = tensors["w"].clone()
    negative_zero[0, 0] = -0.0
    assert tensor_digest({**tensors, "w": negative_zero}) != digest  # every bit


# ------------------------------------------------------------------------------------------------ statement


@pytest.fixture
def small(digits):
    data = digits.train.subset(range(30))
    spec = spec_for_data("cnn", data.input_shape, data.num_classes, {"width": 2})
    return data, spec


def test_statement_binds_every_setting_and_opens_only_with_its_seed(small, tmp_path):
    data, spec = small
    config = TrainConfig(epochs=2, batch_size=8, seed=7)
    statement, opening = make_statement(data, config, spec, checkpoint_every=3, nonce=bytes(range(32)))
    assert statement.opens(opening) and opening == SeedOpening(seed=7, nonce=bytes(range(32)).hex())
    assert not statement.opens(SeedOpening(seed=8, nonce=opening.nonce))
    assert not statement.opens(SeedOpening(seed=7, nonce="00" * 32))
    golden = hashlib.sha256(b"modeldeed/pol-seed/v1\x00" + (7).to_bytes(8, "big") + bytes(range(32))).hexdigest()
    assert statement.seed_commitment == golden == seed_commitment(7, bytes(range(32))).hex()
    assert golden == "e8d516a1fc3651fc660a5b8c323bd2d7281162f7c2aab56ce0cb165eab86ee97"  # docs/formats.md
    doc = statement.to_json()
    assert "seed" not in doc["training"] and doc["training"]["lr"] == 0.05 and doc["checkpoint_every"] == 3
    assert doc["model"] == {"architecture": "cnn", "arguments": spec.arguments}
    assert doc["dataset"]["merkle_root"] == MerkleTree.from_samples(data.x, data.y).root.hex()
    assert doc["trained_parameters"] is None and doc["triggers"] is None
    assert statement.config(7) == config
    changed = [
        make_statement(
            data, TrainConfig(epochs=2, batch_size=8, seed=7, lr=0.04), spec, checkpoint_every=3, nonce=bytes(range(32))
        )[0],
        make_statement(data, config, spec, checkpoint_every=4, nonce=bytes(range(32)))[0],
        make_statement(
            data, config, spec, checkpoint_every=3, nonce=bytes(range(32)), trained_parameters=["classifier.3.bias"]
        )[0],
        make_statement(data.subset(range(29)), config, spec, checkpoint_every=3, nonce=bytes(range(32)))[0],
        make_statement(
            data,
            config,
            spec,
            checkpoint_every=3,
            nonce=bytes(range(32)),
            triggers=TriggerSet(data.x[:2], data.y[:2], ("ab" * 32,)),
        )[0],
    ]
    assert len({s.id for s in changed} | {statement.id}) == 6
    folder = tmp_path / "commit"
    folder.mkdir()
    save_statement(folder, statement)
    save_opening(folder, opening)
    assert load_statement(folder) == statement == load_statement(folder / "statement.json")
    assert load_opening(folder) == opening == load_opening(folder / "statement.json")  # the opening beside it
    with pytest.raises(ModeldeedError, match="already exists; a statement is made once"):
        save_statement(folder, changed[0])
    save_statement(folder, changed[0], force=True)
    assert load_statement(folder).id == changed[0].id


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=1), "field 'version': Input should be 2"),
        (lambda d: d["dataset"].update(merkle_root="xyz"), "field 'dataset.merkle_root': String should match"),
        (lambda d: d["training"].update(lr=True), "setting 'lr' must be a finite number"),
        (lambda d: d["training"].pop("momentum"), "lacks the setting 'momentum'"),
        (lambda d: d["training"].update(seed=3), "must not hold the seed"),
        (lambda d: d.update(created="2020-01-01"), "field 'created': Extra inputs are not permitted"),
        (lambda d: d.update(trained_parameters=["a", "a"]), "lists a parameter twice"),
    ],
)
def test_statement_loader_names_the_field(small, tmp_path, edit, message):
    data, spec = small
    statement, _ = make_statement(data, TrainConfig(epochs=1), spec, checkpoint_every=1)
    doc = statement.to_json()
    edit(doc)
    path = tmp_path / "statement.json"
    import json

    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=message):
        load_statement(path)
    assert isinstance(statement, TrainingStatement)


def test_statement_rejects_settings_training_cannot_have(small):
    data, spec = small
    with pytest.raises(ValueError):
        seed_commitment(2**64, bytes(32))
    assert math.isfinite(make_statement(data, TrainConfig(epochs=1), spec, checkpoint_every=1)[0].config(0).lr)
