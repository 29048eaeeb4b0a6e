"""The pieces of PoL on their own: compressed exact checkpoints, distances, the KS test, interval selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from modeldeed.errors import FormatError
from modeldeed.pol import IntervalInfo, cosine_distance, distances, ks_tests, top_q_per_epoch
from modeldeed.pol.checkpoints import (
    decode_checkpoint,
    delta,
    encode_tensor,
    load_checkpoint,
    parse_safetensors,
    save_checkpoint,
    shuffle,
    undelta,
    unshuffle,
)
from modeldeed.pol.initialisation import failing_layers


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.numel() == 0 or torch.equal(
        a.contiguous().view(-1).view(torch.uint8), b.contiguous().view(-1).view(torch.uint8)
    )


# ------------------------------------------------------------------------------------------------ codec


def test_shuffle_puts_each_byte_plane_together():
    words = np.array([0x04030201, 0x08070605], dtype=np.uint32)
    assert shuffle(words) == bytes([1, 5, 2, 6, 3, 7, 4, 8])
    assert unshuffle(bytes([1, 5, 2, 6, 3, 7, 4, 8]), 4, 2).tolist() == words.tolist()


def test_delta_encodings_are_exact_and_small_for_close_values():
    base = np.array([7, 7, 0, 0xFFFFFFFF], dtype=np.uint32)
    words = np.array([5, 9, 0xFFFFFFFF, 0], dtype=np.uint32)
    sub = delta(words, base, "sub")
    assert sub.tolist() == [3, 4, 1, 2]  # zigzag of -2, +2, -1 (wrapped), +1 (wrapped)
    assert delta(words, base, "xor").tolist() == [2, 14, 0xFFFFFFFF, 0xFFFFFFFF]
    for encoding in ("sub", "xor"):
        assert undelta(delta(words, base, encoding), base, encoding).tolist() == words.tolist()
    big = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64)
    other = np.random.default_rng(1).integers(0, 2**63, 1000, dtype=np.uint64)
    assert (undelta(delta(big, other, "sub"), other, "sub") == big).all()


SPECIAL = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-45, -3.4e38, float("nan")])


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool],
)
def test_checkpoints_round_trip_bit_for_bit(tmp_path, dtype):
    generator = torch.Generator().manual_seed(0)
    base = {
        "a": (torch.randn(33, 5, generator=generator) * 100).to(dtype),
        "scalar": torch.tensor(3).to(dtype),
        "empty": torch.zeros(0, 4, dtype=dtype),
    }
    if dtype.is_floating_point:
        base["special"] = SPECIAL.to(dtype)
    new = {k: (v + 1).to(dtype) if k == "a" else v for k, v in base.items()}
    new["added"] = torch.ones(2, 2, dtype=dtype)
    save_checkpoint(tmp_path / "0.safetensors", 0, base)
    save_checkpoint(tmp_path / "1.safetensors", 1, new, base, 0)
    first = load_checkpoint(tmp_path / "0.safetensors", 0)
    second = load_checkpoint(tmp_path / "1.safetensors", 1, first, 0)
    assert set(first) == set(base) and set(second) == set(new)
    for name in base:
        assert same_bits(first[name], base[name]), name
    for name in new:
        assert same_bits(second[name], new[name]), name


def test_xor_deltas_decode_exactly():
    import zstandard
    from safetensors.torch import save

    from modeldeed.pol.checkpoints import tensor_words

    base = torch.randn(50, generator=torch.Generator().manual_seed(0))
    new = base + 0.01
    blob = zstandard.ZstdCompressor(write_checksum=True).compress(
        shuffle(delta(tensor_words(new), tensor_words(base), "xor"))
    )
    header = {
        "format": "modeldeed.pol.checkpoint",
        "version": 1,
        "step": 2,
        "base_step": 1,
        "entries": [{"name": "w", "dtype": "F32", "shape": [50], "encoding": "xor"}],
    }
    data = save({"w": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}, metadata={"modeldeed": json.dumps(header)})
    assert same_bits(decode_checkpoint(data, "c", 2, {"w": base}, 1)["w"], new)


def test_a_delta_against_close_weights_is_much_smaller_than_the_raw_tensor():
    generator = torch.Generator().manual_seed(0)
    w = torch.rand(100_000, generator=generator) - 0.5
    moved = w + 1e-4 * torch.randn(100_000, generator=generator)
    raw_encoding, raw = encode_tensor(moved, None)
    encoding, coded = encode_tensor(moved, w)
    assert raw_encoding == "raw" and encoding == "sub"
    assert len(coded) < 0.75 * len(raw) < 0.75 * 400_000


def checkpoint_bytes(tmp_path, tensors=None):  # type: ignore[no-untyped-def]
    tensors = tensors or {"w": torch.arange(1000, dtype=torch.float32)}
    return save_checkpoint(tmp_path / "c.safetensors", 4, tensors)


def test_a_checkpoint_must_be_the_one_the_proof_expects(tmp_path):
    data = checkpoint_bytes(tmp_path)
    with pytest.raises(
        FormatError, match=r"c \(checkpoint header\): field 'step' is 4, but the proof lists this file for step 5"
    ):
        decode_checkpoint(data, "c", 5)
    with pytest.raises(FormatError, match="base_step' is None, but the proof says 3"):
        decode_checkpoint(data, "c", 4, {}, 3)
    assert torch.equal(decode_checkpoint(data, "c", 4)["w"], torch.arange(1000, dtype=torch.float32))


def test_corrupt_checkpoints_fail_with_the_file_and_the_problem(tmp_path):
    data = checkpoint_bytes(tmp_path)
    with pytest.raises(FormatError, match="c.safetensors: truncated"):
        decode_checkpoint(data[:5], tmp_path / "c.safetensors", 4)
    with pytest.raises(FormatError, match="not a valid safetensors file"):
        decode_checkpoint(data[:-10], "c", 4)
    header_len = int.from_bytes(data[:8], "little")
    start, end = json.loads(data[8 : 8 + header_len])["w"]["data_offsets"]
    flipped = bytearray(data)
    flipped[8 + header_len + (start + end) // 2] ^= 0x40
    with pytest.raises(FormatError, match="tensor 'w': corrupt compressed data"):
        decode_checkpoint(bytes(flipped), "c", 4)
    blobs, metadata = parse_safetensors(data, "c")
    header = json.loads(metadata["modeldeed"])
    for bad, message in [
        ({"shape": [1001]}, "compressed frame holds 4000 bytes, shape \\[1001\\] needs 4004"),
        ({"shape": [2**40, 2**40]}, "more than the 17179869184 the architecture.s state can hold"),
        ({"dtype": "F17"}, r"field 'entries\[0\].dtype': Input should be 'F64', 'F32'"),
        ({"encoding": "xor"}, "encoded as a xor delta, but the base checkpoint has no such tensor"),
        ({"shape": "1000"}, r"field 'entries\[0\].shape': Input should be a valid list"),
        ({"extra": 1}, r"field 'entries\[0\].extra': Extra inputs are not permitted"),
    ]:
        entry = {**header["entries"][0], **bad}
        doc = {**header, "entries": [entry]}
        from safetensors.torch import save

        forged = save(blobs, metadata={"modeldeed": json.dumps(doc)})
        with pytest.raises(FormatError, match=message):
            decode_checkpoint(forged, "c", 4, {} if bad.get("encoding") else None, None)


def test_checkpoint_files_are_never_unpickled(tmp_path):
    import pickle

    evil = pickle.dumps({"w": 1})
    (tmp_path / "evil.safetensors").write_bytes(evil)
    with pytest.raises(FormatError):
        load_checkpoint(tmp_path / "evil.safetensors", 0)


# ------------------------------------------------------------------------------------------------ distances


def test_distances_on_known_vectors():
    a = torch.tensor([1.0, 0.0, -2.0])
    b = torch.tensor([0.0, 2.0, -2.0])
    d = distances(a, b)
    assert d["l1"] == 3.0 and d["l2"] == pytest.approx(math.sqrt(5)) and d["linf"] == 2.0
    assert d["cos"] == pytest.approx(1 - 4 / (math.sqrt(5) * math.sqrt(8)), rel=1e-12)


def test_cosine_distance_is_the_correct_formula():
    # the reference code divides by |a||a|: for b = 2a it reports 1 - 2 = -1; the right answer is 0
    a = torch.tensor([1.0, 0.0])
    assert cosine_distance(a, 2 * a) == 0.0
    assert cosine_distance(a, torch.tensor([0.0, 3.0])) == pytest.approx(1.0)
    assert cosine_distance(a, -a) == pytest.approx(2.0)
    assert cosine_distance(a, torch.zeros(2)) == 1.0


def test_cosine_distance_of_nearly_equal_vectors_is_not_rounding_noise():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, generator=generator)
    b = a.clone()
    b[0] += 1e-3
    exact = 1 - float(torch.dot(a.double(), b.double()) / (a.double().norm() * b.double().norm()))
    got = cosine_distance(a, b)
    assert got > 0 and got == pytest.approx(exact, rel=1e-3)
    assert distances(a, a)["cos"] == 0.0


# ------------------------------------------------------------------------------------------------ initialisation


def test_ks_accepts_a_fresh_default_initialisation_and_rejects_a_wider_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Flatten(), nn.Linear(400, 50))
    tests = ks_tests(model, model.state_dict(), "pytorch-default")
    assert [t.name for t in tests] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert tests[2].distribution == "U(-0.05, 0.05)"
    assert failing_layers(tests, 0.01, True)[1] == []
    wide = {k: v * 1.5 if k.endswith("weight") else v for k, v in model.state_dict().items()}
    threshold, failing = failing_layers(ks_tests(model, wide, "pytorch-default"), 0.01, True)
    assert threshold == 0.0025 and [t.name for t in failing] == ["0.weight", "2.weight"]
    normal = {k: torch.randn_like(v) * math.sqrt(2 / 400) if k == "2.weight" else v for k, v in wide.items()}
    assert failing_layers(ks_tests(model, normal, "kaiming-normal"), 0.01, True)[1][0].name == "0.weight"


# ------------------------------------------------------------------------------------------------ selection


def test_top_q_per_epoch_unites_the_largest_updates_of_each_metric():
    def info(index, epoch, l2, linf):  # type: ignore[no-untyped-def]
        return IntervalInfo(index, 10 * index, 10 * index + 10, epoch, {"l2": l2, "linf": linf})

    intervals = [
        info(0, 0, 5.0, 0.1),
        info(1, 0, 1.0, 0.9),
        info(2, 0, 3.0, 0.2),
        info(3, 1, 1.0, 1.0),
        info(4, 1, 2.0, 0.5),
    ]
    assert top_q_per_epoch(intervals, 1, ["l2"], "id") == [0, 4]
    assert top_q_per_epoch(intervals, 1, ["l2", "linf"], "id") == [0, 1, 3, 4]
    assert top_q_per_epoch(intervals, 2, ["l2"], "id") == [0, 2, 3, 4]
    assert top_q_per_epoch(intervals, 0, ["l2"], "id") == [0, 1, 2, 3, 4]


def test_the_pol_package_has_no_way_to_unpickle():
    from pathlib import Path

    import modeldeed.pol

    mine = [
        "__init__",
        "calibrate",
        "checkpoints",
        "checks",
        "distances",
        "initialisation",
        "intervals",
        "proof",
        "recorder",
        "replay",
        "store",
        "summary",
        "verify",
        "writer",
    ]
    package = Path(modeldeed.pol.__file__).parent
    for name in mine:
        source = (package / f"{name}.py").read_text()
        for forbidden in ("import pickle", "torch.load(", "pickle.load", "numpy.load(", "np.load("):
            assert forbidden not in source, f"{name}.py uses {forbidden}"
