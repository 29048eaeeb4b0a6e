"""`modeldeed train` / `evaluate` as a new user runs them, and the exit status on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modeldeed.cli import main


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "runs" / "clean"
    assert (
        main(["train", "--data", "digits", "--model", "cnn", "--epochs", "4", "--out", str(out), "--no-progress"]) == 0
    )
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    assert "saved to" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] > 0.9 and report["samples"] == 359
    meta = json.loads((out / "model.json").read_text())
    assert meta["extra"]["training"]["epochs"] == 4 and meta["extra"]["dataset"] == "digits"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "imagenet", "--out", "x"], "unknown dataset 'imagenet'"),
        (["train", "--data", "digits", "--model", "vgg", "--out", "x"], "unknown model 'vgg'"),
        (["train", "--data", "digits", "--batch-size", "0", "--out", "x"], "argument --batch-size: must lie in [1, "),
        (["train", "--data", "digits", "--milestones", "a,b", "--out", "x"], "--milestones must be comma-separated"),
        (["evaluate", "does/not/exist", "--data", "digits"], "does/not/exist: model directory not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_evaluate_rejects_mismatched_data(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    out = tmp_path / "m"
    assert main(["train", "--data", "digits", "--epochs", "0", "--out", str(out), "--no-progress"]) == 0
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros((20, 1, 5, 5), np.uint8), y=np.arange(20) % 10)
    assert main(["evaluate", str(out), "--data", f"npz:{path}"]) == 2
    assert "takes inputs of shape (1, 8, 8)" in capsys.readouterr().err


def test_console_script_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "modeldeed", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "train" in done.stdout and "evaluate" in done.stdout
    done = subprocess.run([sys.executable, "-m", "modeldeed", "train"], capture_output=True, text=True)
    assert done.returncode == 2 and "--data" in done.stderr
