"""Nothing silently wrong: commands that would overwrite, load the wrong data or train a model that does not fit
refuse with a reason; warnings the user cannot act on stay out of the terminal; long work shows progress."""

from __future__ import annotations

import json
import logging
import sys
import textwrap

import pytest
import torch

from modeldeed.attacks import FTLL, GaussianNoise, MagnitudePruning, SuiteEntry, run_suite, watermark_verifier
from modeldeed.attacks.planning import measure_epoch_seconds, suite_plan
from modeldeed.cli import main
from modeldeed.data import load_dataset
from modeldeed.errors import DataError, ModeldeedError
from modeldeed.experiments.notes import collected_warnings
from modeldeed.models import build_model, load_model, spec_for_data
from modeldeed.progress import ProgressEvent, Tracker, Work
from modeldeed.training import TrainConfig, train
from modeldeed.watermark import load_key_pair


def test_train_refuses_to_overwrite_a_model_without_force(tmp_path, capsys):
    args = ["train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "m"), "--no-progress"]
    assert main(args + ["--seed", "0"]) == 0
    first = (tmp_path / "m" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args + ["--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a model" in err and "pass --force to replace it" in err
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == first
    assert main(args + ["--seed", "1", "--force"]) == 0
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != first


def test_mnist_without_a_data_dir_never_falls_back_to_fashion_mnist(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MODELDEED_DATA", raising=False)
    with pytest.raises(DataError, match="mnist: pass --data-dir"):
        load_dataset("mnist")
    assert main(["train", "--data", "mnist", "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    assert "mnist: pass --data-dir" in capsys.readouterr().err


@pytest.fixture()
def user_models(tmp_path, monkeypatch):
    (tmp_path / "fit_models.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def seven(in_channels, input_size, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size[0] * input_size[1], 7))
        def twelve(in_channels, input_size, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size[0] * input_size[1], 12))
        def wrong_input(num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(100, num_classes))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fit_models"
    sys.modules.pop("fit_models", None)


def test_a_model_that_does_not_fit_the_data_fails_before_training(user_models, digits, tmp_path, capsys):
    for factory, problem in (
        ("seven", r"output for 2 digits inputs has shape \[2, 7\]; training needs \[2, 10\]"),
        ("twelve", r"shape \[2, 12\]; training needs \[2, 10\]"),  # would otherwise train on classes 10 and 11
        ("wrong_input", r"cannot take digits's inputs \(shape \[1, 8, 8\]\)"),
    ):
        spec = spec_for_data(f"{user_models}:{factory}", (1, 8, 8), 10, trust_code=True)
        model = build_model(spec, seed=0, trust_code=True)
        before = [p.clone() for p in model.parameters()]
        with pytest.raises(ModeldeedError, match=problem):
            train(model, digits.train, TrainConfig(epochs=1), progress=False)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # not one step was taken
    args = ["train", "--data", "digits", "--model", f"{user_models}:seven", "--trust-model-code", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldeed: error: the model's output") and "Traceback" not in err


def test_warnings_of_inner_steps_are_collected_not_printed(capsys):
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        notes: list[str] = []
        with collected_warnings(notes):
            logging.getLogger("modeldeed.attacks.pol_spoof_fang").warning("declare a smaller batch size")
            logging.getLogger("modeldeed.attacks").error("a real error")
        logging.getLogger("modeldeed.attacks").warning("after the demo")
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    assert notes == ["attacks.pol_spoof_fang: declare a smaller batch size"]
    assert "declare a smaller batch size" not in err and "a real error" in err and "after the demo" in err


def test_demo_keeps_its_own_warnings_out_of_the_terminal_and_shows_progress(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "demo",
        "--out",
        str(out),
        "--epochs",
        "6",
        "--attacks",
        "prune-0.6",
        "--sweeps",
        "",
        "--no-zk",
    ]  # blindfold warns at 6
    assert main([*args, "--spoofs", "blindfold"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err
    assert "demo 1/6: keygen" in captured.err and "demo 6/6: proof-of-learning spoofs" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert any(n.startswith("attacks.pol_spoof_fang: blindfold") for n in results["notes"])
    assert "Verdict:" in captured.out and f"wrote {out}/results.json" in captured.out


def test_suite_reports_each_attack_with_its_weight(tiny_demo, digits):
    run, _ = tiny_demo
    model, _ = load_model(run / "model")
    entries = [
        SuiteEntry("prune", MagnitudePruning(sparsity=0.5, progress=False)),
        SuiteEntry("ftll", FTLL(epochs=1, progress=False)),
        SuiteEntry("noise", GaussianNoise(std=0.1, progress=False)),
    ]
    events: list[ProgressEvent] = []
    verifier = watermark_verifier(*load_key_pair(run / "keys" / "private"))
    run_suite(model, digits.train, test=digits.test, verifier=verifier, entries=entries, on_progress=events.append)
    assert [(e.index, e.count, e.label) for e in events] == [
        (0, 3, "prune"),
        (1, 3, "ftll"),
        (2, 3, "noise"),
        (3, 3, ""),
    ]
    plan = suite_plan(entries)
    assert plan[1].cost > 5 * plan[0].cost  # a training attack weighs more than a weight edit
    assert [e.done for e in events] == pytest.approx([0, plan[0].cost, plan[0].cost + plan[1].cost, events[-1].total])
    assert events[-1].finished and events[-1].remaining_seconds() == 0
    assert measure_epoch_seconds(model, digits.train, TrainConfig(batch_size=32)) > 0


def test_tracker_refuses_more_items_than_planned():
    tracker = Tracker("t", [Work("a", 1.0)])
    with tracker.item():
        pass
    with pytest.raises(IndexError), tracker.item():
        pass


def test_attack_suite_prints_progress_lines_unless_told_not_to(tiny_demo, tmp_path, capsys):
    run, _ = tiny_demo
    args = [
        "attack",
        "suite",
        str(run / "model"),
        "--key",
        str(run / "keys" / "private"),
        "--data",
        "digits",
        "--only",
        "prune-0.3,noise-0.1",
        "--threads",
        "1",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "attack 1/2: prune-0.3 (elapsed" in err and "attack 2/2: noise-0.1 (elapsed" in err
    assert main([*args, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_experiment_says_which_model_of_how_many(tmp_path, capsys):
    args = ["experiment", "functionality", "--epochs", "2", "--trigger-size", "10", "--train-limit", "200"]
    assert main([*args, "--out", str(tmp_path), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    for n, model in enumerate(("No-WM", "FROMSCRATCH", "PRETRAINED"), start=1):
        assert f"experiment functionality {n}/4: train {model} (model {n} of 3)" in err
    assert "experiment functionality 4/4: evaluate the three models" in err
    assert main([*args, "--out", str(tmp_path), "--threads", "1"]) == 0  # the owner's models are reused
    assert "experiment functionality 1/1: evaluate the three models" in capsys.readouterr().err


def test_experiments_keep_their_attacks_warnings_and_pass_the_owners_on(capsys):
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        notes: list[str] = []
        with collected_warnings(notes, "modeldeed.attacks"):
            logging.getLogger("modeldeed.attacks.pol_spoof_fang").warning("declare more epochs")
            logging.getLogger("modeldeed.watermark.mark").warning("raise k or the epochs")
    finally:
        logging.getLogger().removeHandler(handler)
    assert notes == ["attacks.pol_spoof_fang: declare more epochs"]
    err = capsys.readouterr().err
    assert "raise k or the epochs" in err and "declare more epochs" not in err
