"""`modeldeed attack ...` end to end on digits: files written, verdicts from the real verifier, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from attack_helpers import THREADS, watermarked_digits

from modeldeed.attacks import load_key_pair, watermark_verifier
from modeldeed.cli import main
from modeldeed.models import load_model, save_model
from modeldeed.training import accuracy

QUICK = ["--epochs", "1", "--lr", "0.01", "--no-progress", "--threads", str(THREADS)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The shared watermarked model and its key, saved as `modeldeed` would save them."""
    from modeldeed.watermark import save_key_pair

    marked = watermarked_digits()
    root = tmp_path_factory.mktemp("attack-cli")
    save_model(root / "wm", marked.model, marked.info)
    save_key_pair(root / "key", marked.marking_key, marked.verification_key, pngs=False)
    return root, marked


def attack(files, *args):
    root, _ = files
    return main(["attack", *args[:1], str(root / "wm"), "--key", str(root / "key"), "--data", "digits", *args[1:]])


def test_finetune_writes_a_verifiable_model_and_both_views(files, capsys):
    root, marked = files
    out = root / "ftll"
    code = attack(files, "finetune", "--mode", "ftll", "--out", str(out), "--json", *QUICK)
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["watermark_removed"] else 0)
    assert result["attack"] == "ftll" and result["parameters"]["epochs"] == 1
    assert json.loads((out / "attack.json").read_text()) == result
    verify = watermark_verifier(*load_key_pair(root / "key"))
    thief, _ = load_model(out)
    paper_view, _ = load_model(out / "original-head")
    assert verify(thief).trigger_accuracy == pytest.approx(result["attacker_head"]["trigger_accuracy"])
    assert verify(paper_view).trigger_accuracy == pytest.approx(result["original_head"]["trigger_accuracy"])
    assert accuracy(thief, marked.data.test) == pytest.approx(result["test_accuracy_after"])
    # the saved models are ordinary model directories: `modeldeed watermark verify` reaches the same verdicts
    for directory, view in ((out, "attacker_head"), (out / "original-head", "original_head")):
        code = main(["watermark", "verify", str(directory), "--key", str(root / "key"), "--json"])
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["accepted"] == result[view]["accepted"] and code == (0 if verdict["accepted"] else 1)


def test_paper_defaults_come_from_model_json(files, capsys):
    root, marked = files
    attack(
        files,
        "finetune",
        "--mode",
        "ftal",
        "--out",
        str(root / "ftal"),
        "--json",
        "--data-fraction",
        "0.2",
        "--no-progress",
        "--threads",
        str(THREADS),
    )
    result = json.loads(capsys.readouterr().out)
    training = marked.info.extra["training"]
    assert result["parameters"]["epochs"] == training["epochs"]
    assert result["parameters"]["lr"] == pytest.approx(training["lr"])  # no milestones: the last lr is the first
    assert result["parameters"]["batch_size"] == training["batch_size"]
    assert result["data"]["samples"] == round(0.2 * len(marked.data.train))


@pytest.mark.parametrize(
    "args",
    [
        ["piracy", "--finetune", "rtal", "--trigger-size", "10", "--embed-epochs", "1"],
        ["prune", "--sparsity", "0.7"],
        ["fine-prune", "--channels", "0.5"],
        ["quantize", "--bits", "4"],
        ["noise", "--std", "0.2"],
        ["distill", "--soft"],
        ["preprocess", "--blur", "0.5", "--bits", "4"],
    ],
    ids=lambda a: a[0],
)
def test_each_attack_command(files, capsys, args):
    root, _ = files
    out = root / args[0]
    extra = QUICK if args[0] in ("piracy", "fine-prune", "distill") else ["--threads", str(THREADS)]
    code = attack(files, args[0], "--out", str(out), "--json", *args[1:], *extra)
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["watermark_removed"] else 0)
    assert (out / "model.json").is_file() and (out / "attack.json").is_file()
    attacked, _ = load_model(out)  # a model directory the rest of modeldeed can open
    if args[0] == "piracy":  # the pirate's key is saved, and a judge reaches the recorded verdict with it
        pirate = watermark_verifier(*load_key_pair(out / "pirate-key"))(attacked)
        assert pirate.trigger_accuracy == pytest.approx(result["details"]["pirate"]["trigger_accuracy"])
        assert result["details"]["pirate"]["key_id"] == result["parameters"]["key"]


def test_transfer_to_a_resized_dataset(files, tmp_path, capsys):
    root, marked = files
    train = marked.data.train
    big = torch.nn.functional.interpolate(train.x, size=(16, 16), mode="nearest")
    np.savez(tmp_path / "parity.npz", x=(big.numpy() * 255).astype(np.uint8), y=(train.y % 2).numpy())
    out = root / "transfer"
    code = attack(files, "transfer", "--target", f"npz:{tmp_path / 'parity.npz'}", "--out", str(out), "--json", *QUICK)
    result = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and result["view"] == "original_head"
    thief, info = load_model(out)
    assert len(info.classes) == 2 and info.spec.arguments["num_classes"] == 2
    paper_view, _ = load_model(out / "original-head")
    verify = watermark_verifier(*load_key_pair(root / "key"))
    assert verify(paper_view).trigger_accuracy == pytest.approx(result["trigger_accuracy"])


def test_suite_writes_one_results_file(files, capsys):
    root, _ = files
    out = root / "suite"
    code = main(
        [
            "attack",
            "suite",
            str(root / "wm"),
            "--key",
            str(root / "key"),
            "--data",
            "digits",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--no-progress",
            "--threads",
            str(THREADS),
        ]
    )
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    labels = [r["label"] for r in results]
    expected = {"ftll", "ftal", "rtll", "rtal", "piracy-ftal", "piracy-rtal", "distill-soft", "quantize-4bit"}
    assert expected <= set(labels)
    assert "transfer" not in labels  # no --target given
    for r in results:
        for key in ("attack", "test_accuracy_before", "test_accuracy_after", "trigger_accuracy", "watermark_removed"):
            assert key in r
    assert code == (1 if any(r["watermark_removed"] for r in results) else 0)
    assert "results in" in printed


def test_suite_only_selects_attacks(files, capsys):
    root, _ = files
    out = root / "suite-only"
    main(
        [
            "attack",
            "suite",
            str(root / "wm"),
            "--key",
            str(root / "key"),
            "--data",
            "digits",
            "--out",
            str(out),
            "--only",
            "quantize,noise-0.1",
            "--json",
            "--threads",
            str(THREADS),
        ]
    )
    results = json.loads(capsys.readouterr().out)
    assert sorted(r["label"] for r in results) == ["noise-0.1", "quantize-2bit", "quantize-4bit", "quantize-8bit"]


def test_bad_input_exits_2(files, capsys):
    root, _ = files
    assert attack(files, "quantize", "--out", str(root / "bad"), "--bits", "1") == 2
    assert "bits" in capsys.readouterr().err
    # the real verifier needs the owner's key: a usage error, one line, exit 2
    assert main(["attack", "quantize", str(root / "wm"), "--data", "digits", "--out", str(root / "bad")]) == 2
    err = capsys.readouterr().err
    assert "--key" in err and err.count("\n") == 1
    assert (
        main(
            [
                "attack",
                "quantize",
                str(root / "missing"),
                "--key",
                str(root / "key"),
                "--data",
                "digits",
                "--out",
                str(root / "bad"),
            ]
        )
        == 2
    )
