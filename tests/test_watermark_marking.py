"""End to end on digits: mark a cnn (FROMSCRATCH and PRETRAINED), verify it, reject the clean model; public variants.

One clean model is trained once for the module; everything else reuses it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeed.cli import main
from modeldeed.models import load_model
from modeldeed.training import Batch, TrainConfig, TrainState, accuracy
from modeldeed.watermark import (
    TriggerMixingHook,
    load_key_pair,
    mark,
    mark_pretrained,
    pkeygen,
    pverify,
    save_key_pair,
    verify,
)
from modeldeed.watermark.public import check_public_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """This small cnn trains fastest on one thread, and much faster than on two when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("wm")
    assert main(["train", "--data", "digits", "--epochs", "20", "--out", str(root / "clean"), "--no-progress"]) == 0
    assert main(["watermark", "keygen", "--data", "digits", "--size", "100", "--out", str(root / "keys")]) == 0
    return root


@pytest.fixture(scope="module")
def clean_accuracy(work: Path, digits) -> float:
    return accuracy(load_model(work / "clean")[0], digits.test)


def run_json(args: list[str], capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_fromscratch_via_train_watermark(work: Path, clean_accuracy: float, capsys) -> None:
    out = str(work / "scratch")
    args = ["train", "--data", "digits", "--epochs", "20", "--watermark", str(work / "keys")]
    # digits has 23 steps an epoch: k = 5 lets each trigger appear ~23 times (the paper's runs: hundreds).
    assert main([*args, "--triggers-per-batch", "5", "--out", out, "--no-progress"]) == 0
    assert "trigger accuracy" in capsys.readouterr().out
    note = json.loads((work / "scratch" / "model.json").read_text())["extra"]["watermark"]
    assert note["mode"] == "fromscratch" and note["trigger_accuracy"] >= 0.99
    code, verdict = run_json(["watermark", "verify", out, "--key", str(work / "keys"), "--data", "digits"], capsys)
    assert code == 0 and verdict["accepted"] is True and verdict["reasons"] == []
    assert verdict["trigger_accuracy"] >= 0.99
    assert abs(verdict["test_accuracy"] - clean_accuracy) <= 0.015
    assert verdict["chance_probability"] == pytest.approx(6.110236824191096e-78, rel=1e-9)


def test_pretrained_via_embed(work: Path, clean_accuracy: float, capsys) -> None:
    out = str(work / "pre")
    args = ["watermark", "embed", str(work / "clean"), "--key", str(work / "keys"), "--data", "digits"]
    assert main([*args, "--epochs", "10", "--triggers-per-batch", "8", "--out", out, "--no-progress"]) == 0
    code, verdict = run_json(["watermark", "verify", out, "--key", str(work / "keys"), "--data", "digits"], capsys)
    assert code == 0 and verdict["trigger_accuracy"] >= 0.99
    assert abs(verdict["test_accuracy"] - clean_accuracy) <= 0.015


def test_clean_model_is_rejected(work: Path, capsys) -> None:
    code, verdict = run_json(["watermark", "verify", str(work / "clean"), "--key", str(work / "keys")], capsys)
    assert code == 1 and verdict["accepted"] is False
    assert verdict["trigger_accuracy"] < 0.3  # about 1/|L| = 10 %: labels are random
    assert "triggers are classified as committed; at least 90 are needed" in verdict["reasons"][0]
    capsys.readouterr()
    assert main(["watermark", "verify", str(work / "clean"), "--key", str(work / "keys")]) == 1
    assert capsys.readouterr().out.startswith("REJECTED")


def test_cut_and_choose_public_verification(work: Path, digits, capsys) -> None:
    keys = work / "pkeys"
    assert main(["watermark", "pkeygen", "--data", "digits", "--security", "8", "--out", str(keys)]) == 0
    mk, vk = load_key_pair(keys)
    model = load_model(work / "clean")[0]
    mark_pretrained(model, mk, digits.train, TrainConfig(epochs=5), k=4)
    public_only = pverify(vk, model)
    assert not public_only.accepted and public_only.metrics["public_checks_passed"] is True
    assert "needs the marking key" in public_only.reasons[-1]
    reference = load_model(work / "clean")[0]
    verdict = pverify(vk, model, marking_key=mk, data=[digits.train, digits.test], reference_model=reference)
    assert verdict.accepted, verdict.reasons
    assert verdict.triggers == len(mk.marking_indices()) == vk.size - len(vk.opened.indices)
    assert verdict.metrics["cheating_chance_probability"] < 1
    # The clean model, checked the same way, is rejected on the hidden half only.
    clean = pverify(vk, reference, marking_key=mk)
    assert not clean.accepted and clean.metrics["public_checks_passed"] is True
    # Mark used only the hidden half: the model never learnt the opened triggers.
    opened = torch.tensor(vk.opened.labels)
    from modeldeed.training import predict

    assert float((predict(model, vk.opened.images) == opened).float().mean()) < 0.6


def test_reference_model_exposes_true_labels(work: Path, digits) -> None:
    from test_watermark_keys import cheating_key

    _, vk = cheating_key(digits.test, 64)  # real images the reference model classifies well
    reference = load_model(work / "clean")[0]
    problems, metrics = check_public_key(vk, reference_model=reference)
    assert problems and "look like correctly labelled data" in problems[-1]
    assert metrics["reference_agreements"] > len(vk.opened.indices) // 2


def test_bounded_public_verification_cli(work: Path, capsys) -> None:
    keys, out = str(work / "bkeys"), str(work / "bounded")
    assert main(["watermark", "pkeygen", "--data", "digits", "--sets", "2", "--size", "20", "--out", keys]) == 0
    embed = ["watermark", "embed", str(work / "clean"), "--key", keys, "--data", "digits", "--epochs", "5"]
    embed += ["--triggers-per-batch", "8"]
    assert main([*embed, "--out", out, "--no-progress"]) == 0
    assert main(["watermark", "reveal", "--key", keys, "--out", str(work / "r0")]) == 0
    code, verdict = run_json(["watermark", "pverify", out, "--key", keys, "--reveal", str(work / "r0")], capsys)
    assert code == 0 and verdict["accepted"] and verdict["metrics"]["set"] == 0 and verdict["triggers"] == 20
    assert main(["watermark", "reveal", "--key", keys, "--out", str(work / "r1")]) == 0
    capsys.readouterr()
    assert main(["watermark", "reveal", "--key", keys, "--out", str(work / "r2")]) == 2
    assert "all 2 trigger sets have been revealed" in capsys.readouterr().err


def test_mixing_hook_is_deterministic_and_balanced(digits) -> None:
    images, labels = torch.rand(10, 1, 8, 8), torch.arange(10)
    hook = TriggerMixingHook(images, labels, k=3, seed=5)
    picks = np.concatenate([hook.trigger_indices(step) for step in range(10)])  # 30 picks = 3 rounds
    assert np.array_equal(np.bincount(picks, minlength=10), np.full(10, 3))
    again = TriggerMixingHook(images, labels, k=3, seed=5)
    assert np.array_equal(again.trigger_indices(7), hook.trigger_indices(7))
    assert not np.array_equal(
        TriggerMixingHook(images, labels, k=3, seed=6).trigger_indices(0), hook.trigger_indices(0)
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(), digits.train, 0, 1)
    hook.on_train_start(state)
    batch = Batch(4, 0, np.arange(5), digits.train.x[:5], digits.train.y[:5], 0.1)
    out = hook.on_batch(state, batch)
    picked = hook.trigger_indices(4)
    assert out.inputs.shape == (8, 1, 8, 8) and torch.equal(out.inputs[5:], images[picked])
    assert torch.equal(out.labels[5:], labels[picked]) and np.array_equal(out.extra["trigger_indices"], picked)


def test_mark_uses_the_loop_and_leaves_a_clean_copy_alone(work: Path, digits) -> None:
    mk, vk = pkeygen(digits.train.classes, digits.train.input_shape, security_bits=2)
    save_key_pair(work / "tiny", mk, vk)
    base = load_model(work / "clean")[0]
    model = copy.deepcopy(base)
    result = mark(model, mk, digits.train, TrainConfig(epochs=1), k=1)
    assert result.steps == TrainConfig().steps_per_epoch(len(digits.train))
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert changed
    assert verify(mk, vk, base).triggers == len(mk.marking_indices())


def test_a_fresh_key_never_has_a_challenge_that_hides_every_trigger_or_none() -> None:
    """ℓ = 4 makes a degenerate challenge likely (1 in 8); a CSPRNG key redraws its nonces instead of failing."""
    for _ in range(40):
        mk, vk = pkeygen([str(i) for i in range(10)], (1, 8, 8), security_bits=1)
        challenge = vk.challenge()
        assert 0 < challenge.count(0) < len(challenge)
        assert len(mk.marking_indices()) == challenge.count(0)
