"""modeldeed.zk without Node.js: quantization, encodings, sizes and refusals, key and proof file formats."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from zk_helpers import binary_images, tiny_mlp

from modeldeed.errors import FormatError, ModeldeedError
from modeldeed.models.cnn import SmallCNN
from modeldeed.models.mlp import MLP
from modeldeed.watermark import load_verification_key, pkeygen, save_key_pair
from modeldeed.zk.circuit import MAX_ROWS, CircuitSpec, choose_slots, estimate_rows
from modeldeed.zk.encoding import BITS_PER_FIELD, FIELD_MODULUS, commitment_preimage, pack_bits, trigger_bits, zk_nonce
from modeldeed.zk.proof import MAX_FILE_BYTES, load_proof
from modeldeed.zk.quantize import (
    INPUT_LEVEL,
    agreement,
    magnitude_bounds,
    quantize_inputs,
    quantize_mlp,
    strict_argmax,
)
from modeldeed.zk.statement import split_threshold
from modeldeed.zk.support import supported_problem


def test_integer_forward_is_the_float_forward_scaled(digits):
    model = tiny_mlp()
    q = quantize_mlp(model)
    assert q.dims == (64, 16, 10)
    x = quantize_inputs(digits.test.x[:50])
    _, logits = q.forward(x)
    # by hand: z1 = W1 x + B1, z2 = W2 relu(z1) + B2, integers only
    z1 = x @ q.weights[0].T + q.biases[0]
    assert np.array_equal(logits, np.maximum(z1, 0) @ q.weights[1].T + q.biases[1])
    scale = q.scales[0] * q.scales[1] / INPUT_LEVEL
    with torch.no_grad():
        floats = model(digits.test.x[:50]).numpy()
    assert np.abs(logits * scale - floats).max() < 0.02 * np.abs(floats).max()
    assert max(abs(int(v)) for v in q.public_integers()[:1024]) <= 2**15 - 1
    assert agreement(model, q, digits.test.x).rate >= 0.99


def test_digest_binds_every_integer_and_nothing_else():
    model = tiny_mlp()
    assert quantize_mlp(model).digest() == quantize_mlp(tiny_mlp()).digest()
    with torch.no_grad():
        model.layers[3].bias[7] += 0.5
    assert quantize_mlp(model).digest() != quantize_mlp(tiny_mlp()).digest()


def test_ties_are_no_class():
    logits = np.array([[1, 5, 5], [3, 1, 2], [0, 0, 0]])
    assert strict_argmax(logits).tolist() == [-1, 0, -1]


def test_models_whose_values_outgrow_the_range_checks_are_refused():
    deep = MLP(1, 10, (8, 8), hidden=(64, 64, 64))
    with torch.no_grad():
        for layer in deep.linear_layers():
            layer.weight.fill_(0.01)
    with pytest.raises(ModeldeedError, match="2\\^62"):
        quantize_mlp(deep)
    assert max(magnitude_bounds(quantize_mlp(tiny_mlp()))) < 2**50


def test_unsupported_architectures_are_refused_with_a_row_estimate():
    problem = supported_problem(SmallCNN(1, 10, (8, 8)), (1, 8, 8), 32)
    assert problem is not None and "supports the `mlp` architecture only" in problem
    rows = int(problem.split("about ")[1].split(" rows")[0].replace(",", ""))
    assert rows > MAX_ROWS
    big = MLP(1, 10, (28, 28), hidden=(2048,))
    problem = supported_problem(big, (1, 28, 28), 32)
    assert problem is not None and "rows" in problem and "at most 65536" in problem
    assert supported_problem(tiny_mlp(), (1, 8, 8), 64) is None


def test_slot_choice_and_row_estimate():
    dims = (64, 16, 10)
    assert choose_slots(dims, 4) == 4 and choose_slots(dims, 30) == 32 and choose_slots(dims, 64) == 64
    assert choose_slots(dims, 500) == 128  # more than fits: the largest, and several proofs
    assert estimate_rows(dims, 64) < 2**15  # the digits MLP at n = 64 fits one proof of 2^15 rows
    spec = CircuitSpec(dims, 8)
    assert spec.public_size == 7 + (64 + 1) + (16 + 1) + 2 * 8  # no weights: only their Freivalds vectors
    assert spec.per_slot == 64 + 2 + 10 + 2 * 16 + 10 + 1
    assert spec.private_size == 1 + 8 * spec.per_slot
    with pytest.raises(ModeldeedError, match="trigger slots"):
        CircuitSpec(dims, 7)


def test_trigger_bits_packing_and_nonce():
    image = binary_images(1)[0]
    bits = trigger_bits(image)
    assert bits == [int(v) for v in image.flatten().tolist()]
    assert pack_bits([1, 0, 1]) == [5]
    assert len(pack_bits([1] * (BITS_PER_FIELD + 1))) == 2
    with pytest.raises(ModeldeedError, match="exactly 0 or 1"):
        trigger_bits(torch.full((1, 8, 8), 0.5))
    a, b = zk_nonce(b"\x01" * 32), zk_nonce(b"\x02" * 32)
    assert a != b and a < 2**248 < FIELD_MODULUS and zk_nonce(b"\x01" * 32) == a
    pre = commitment_preimage(image, 3, b"\x01" * 32)
    assert pre[:3] == [a, 3, 64] and pre[3] == pack_bits(bits)[0]


def test_split_threshold():
    assert split_threshold([5, 3, 4], 9) == [5, 3, 1]
    assert split_threshold([5, 3], 10) == [7, 3]  # the excess lands on chunk 0, whose proof cannot exist


def fake_commit(images, labels, nonces):
    return [str(1000 + 7 * i + int(labels[i])) for i in range(len(images))]


def test_key_id_covers_the_poseidon_commitments(tmp_path):
    mk, vk = pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=2, zk_commit=fake_commit)
    assert vk.zk_commitments is not None and len(vk.zk_commitments) == vk.size
    save_key_pair(tmp_path, mk, vk, pngs=False)
    loaded = load_verification_key(tmp_path)
    assert loaded.zk_commitments == vk.zk_commitments and loaded.key_id == vk.key_id
    swapped = dataclasses.replace(vk, zk_commitments=("5", *vk.zk_commitments[1:]))
    assert swapped.key_id != vk.key_id and dataclasses.replace(vk, zk_commitments=None).key_id != vk.key_id
    doc = json.loads((tmp_path / "verification_key.json").read_text())
    for bad in (["01"] * vk.size, ["x"] * vk.size, ["1"] * (vk.size - 1)):
        doc["zk"]["commitments"] = bad
        (tmp_path / "verification_key.json").write_text(json.dumps(doc))
        with pytest.raises(FormatError, match="zk"):
            load_verification_key(tmp_path)


def test_private_keys_cannot_carry_zk_commitments(tmp_path):
    mk, vk = pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=2, zk_commit=fake_commit)
    save_key_pair(tmp_path, mk, vk, pngs=False)
    doc = json.loads((tmp_path / "verification_key.json").read_text())
    doc["scheme"] = "private"
    for key in ("security_bits", "opened"):
        doc.pop(key)
    (tmp_path / "verification_key.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="belongs only in a cut-and-choose key"):
        load_verification_key(tmp_path)


def proof_doc(**changes):
    doc = {
        "format": "modeldeed.zk.watermark-proof",
        "version": 1,
        "key_id": "ab" * 32,
        "model_digest": "cd" * 32,
        "circuit_id": "ef" * 32,
        "o1js": "2.15.0",
        "dims": [64, 16, 10],
        "slots": 8,
        "hidden": 4,
        "required": 4,
        "chunks": [{"threshold": 4, "seed": "7", "proof": "QUJD"}],
        "quantization": {"weight_bits": 16, "hidden_triggers": {"agreeing": 4, "total": 4, "rate": 1.0}},
        "prove_seconds": 1.0,
        "created": "2026-01-01T00:00:00Z",
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"extra": 1}, "extra"),
        ({"chunks": [{"threshold": 4, "seed": "7", "proof": "not base64!"}]}, "chunks"),
        ({"chunks": [{"threshold": 4, "seed": "7", "proof": "QUJD"}] * 65}, "chunks"),
        ({"chunks": [{"threshold": -1, "seed": "7", "proof": "QUJD"}]}, "threshold"),
        ({"chunks": [{"threshold": 4, "seed": "07", "proof": "QUJD"}]}, "seed"),
        ({"chunks": [{"threshold": 4, "seed": str(FIELD_MODULUS), "proof": "QUJD"}]}, "field modulus"),
        ({"slots": 10**9}, "slots"),
        ({"hidden": "4"}, "hidden"),
        ({"format": "modeldeed.zk.other"}, "is not a modeldeed.zk.watermark-proof"),
    ],
)
def test_proof_files_are_declared_and_bounded(tmp_path, change, problem):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof_doc()))
    assert load_proof(path).chunks[0].threshold == 4
    path.write_text(json.dumps(proof_doc(**change)))
    with pytest.raises(FormatError, match=problem):
        load_proof(path)


def test_oversized_proof_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "proof.json"
    path.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(FormatError, match="more than"):
        load_proof(path)


def test_cli_refuses_a_cnn_with_its_circuit_size(tmp_path, capsys):
    from modeldeed.cli import main
    from modeldeed.models import ModelInfo, save_model, spec_for_data

    spec = spec_for_data("cnn", (1, 8, 8), 10)
    save_model(tmp_path / "cnn", SmallCNN(1, 10, (8, 8)), ModelInfo(spec, tuple(map(str, range(10))), (1, 8, 8)))
    mk, vk = pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=2, zk_commit=fake_commit)
    save_key_pair(tmp_path / "keys", mk, vk, pngs=False)
    (tmp_path / "proof.json").write_text(json.dumps(proof_doc()))
    code = main(
        ["watermark", "zk-verify", str(tmp_path / "cnn"), "--public-key", str(tmp_path / "keys"),
         "--proof", str(tmp_path / "proof.json")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modeldeed: error: ") and "rows" in err and "SmallCNN" in err
    assert math.isfinite(float(err.split("about ")[1].split(" rows")[0].replace(",", "")))


def test_a_cached_key_is_used_only_when_pinned_or_written_by_this_user_alone(tmp_path):
    from modeldeed.zk.trust import key_problem, pins, vk_sha256

    circuit_id, pin = next(iter(pins()["circuits"].items()))
    entry = tmp_path / circuit_id
    entry.mkdir(mode=0o755)
    (entry / "circuit_key.json").write_text("{}")
    (entry / "circuit_key.json").chmod(0o644)
    # a pinned circuit: only the pinned key and wrap domain pass, whoever wrote the entry
    assert "not the one modeldeed pins" in key_problem(circuit_id, "AAAA", pin["wrap_domain_log"], entry)
    assert vk_sha256("AAAA") != pin["vk_sha256"]
    other = "cd" * 32  # no pin: the entry must be this user's and writable by nobody else
    entry.chmod(0o755)
    assert key_problem(other, "AAAA", 13, entry) is None
    entry.chmod(0o775)
    assert "owned or writable by another user" in key_problem(other, "AAAA", 13, entry)
    entry.chmod(0o755)
    (entry / "circuit_key.json").chmod(0o666)
    assert "owned or writable by another user" in key_problem(other, "AAAA", 13, entry)
