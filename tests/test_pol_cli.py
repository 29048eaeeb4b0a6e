"""`modeldeed train --proof`, `pol verify | calibrate | inspect`: what they print and their exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeldeed.cli import main
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import record_training
from modeldeed.training import Batch, Hook, TrainConfig, TrainState

TRAIN = [
    "train",
    "--data",
    "digits",
    "--model",
    "cnn",
    "--epochs",
    "1",
    "--batch-size",
    "128",
    "--threads",
    "1",
    "--no-progress",
    "--checkpoint-every",
    "4",
]


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def proof_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pol_cli")
    threads = torch.get_num_threads()
    try:
        assert main([*TRAIN, "--out", str(root / "model"), "--proof", str(root / "proof")]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads 1 must not leak into other tests
    return root


def test_train_records_a_proof_that_verifies(proof_dir, capsys):
    model_json = json.loads((proof_dir / "model" / "model.json").read_text())
    proof_id = model_json["extra"]["proof_id"]
    assert (proof_dir / "proof" / "proof.json").is_file()
    code, out, _ = run(capsys, "pol", "verify", str(proof_dir / "proof"), "--data", "digits")
    assert code == 0 and f"proof {proof_id}: ACCEPTED" in out and "replay              passed" in out
    assert "exact, bit-identical -> ok" in out  # replayed with the recorded thread count: every bit
    code, out, _ = run(capsys, "pol", "verify", str(proof_dir / "proof"), "--json", "--all", "--metric", "l2")
    doc = json.loads(out)
    assert code == 0 and doc["accepted"] is True and doc["reasons"] == [] and doc["proof_id"] == proof_id
    assert [i["index"] for i in doc["intervals"]] == [0, 1, 2] and set(doc["intervals"][0]["error"]) == {"l2"}


def test_a_tampered_proof_exits_1_with_reasons(proof_dir, tmp_path, capsys):
    import shutil

    target = tmp_path / "proof"
    shutil.copytree(proof_dir / "proof", target)
    (target / "checkpoints" / "step-00000004.safetensors").unlink()
    code, out, _ = run(capsys, "pol", "verify", str(target), "--data", "digits")
    assert code == 1 and "REJECTED" in out and "step-00000004.safetensors: file not found" in out
    code, out, _ = run(capsys, "pol", "verify", str(target), "--data", "digits", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["accepted"] is False and "file not found" in doc["reasons"][0]
    code, out, _ = run(capsys, "pol", "verify", str(proof_dir / "proof"), "--expect-id", "ab" * 32)
    assert code == 1 and "differs from the expected" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pol", "verify", "{missing}", "--data", "digits"], "proof directory not found"),
        (["pol", "verify", "{proof}", "--delta", "l2"], "--delta must be METRIC=VALUE"),
        (["pol", "verify", "{proof}", "--delta", "l2=-1"], "--delta must be METRIC=VALUE"),
        (["pol", "verify", "{proof}", "--calibration", "{missing}"], "file not found"),
        (["pol", "verify", "{proof}", "--data", "nosuchdata"], "unknown dataset"),
        (["pol", "inspect", "{missing}"], "file not found"),
        (["pol", "calibrate", "{proof}", "--replay-threads", "0"], "--replay-threads needs"),
        (["train", "--data", "digits", "--out", "{missing}", "--resume"], "--resume continues a --proof recording"),
    ],
)
def test_bad_input_exits_2(proof_dir, tmp_path, capsys, args, message):
    argv = [a.format(proof=proof_dir / "proof", missing=tmp_path / "missing") for a in args]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_inspect_reports_steps_checkpoints_size_and_profile(proof_dir, capsys):
    code, out, _ = run(capsys, "pol", "inspect", str(proof_dir / "proof"))
    assert code == 0
    assert "cnn on digits: 1 epochs x 12 steps = 12 steps; checkpoint every 4 -> 4 checkpoints" in out
    assert "size on disk:" in out and "update size (l2) per epoch" in out
    code, out, _ = run(capsys, "pol", "inspect", str(proof_dir / "proof"), "--json")
    doc = json.loads(out)
    assert doc["steps"] == 12 and doc["checkpoints"] == 4 and len(doc["updates"]) == 3
    assert 0 < doc["sizes"]["checkpoints"] < doc["reference_bytes"]


def test_calibrate_proposes_delta_between_eps_repr_and_d_ref(proof_dir, tmp_path, capsys):
    out_file = tmp_path / "calibration.json"
    code, out, _ = run(
        capsys,
        "pol",
        "calibrate",
        str(proof_dir / "proof"),
        "--data",
        "digits",
        "--replay-threads",
        "1,2",
        "--q",
        "0",
        "--out",
        str(out_file),
        "--json",
        "--no-progress",
    )
    doc = json.loads(out)
    assert code == 0 and doc["settings"] == ["cpu, 1 thread", "cpu, 2 threads"] and doc["reference_steps"] == [4, 8, 12]
    for m in ("l1", "l2", "linf", "cos"):
        assert doc["epsilon_repr"][m] <= doc["delta"][m] < doc["d_ref"][m]
        assert doc["normalised_delta"][m] == pytest.approx(doc["delta"][m] / doc["d_ref"][m])
        assert doc["d_ref_estimate"][m] == pytest.approx(doc["d_ref"][m], rel=0.2)
    assert doc["feasible"] is True
    code, out, _ = run(capsys, "pol", "verify", str(proof_dir / "proof"), "--calibration", str(out_file), "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["policy"]["d_ref"] == doc["d_ref"]
    assert verdict["policy"]["max_relative_error"] == doc["max_relative_error"]
    for interval in verdict["intervals"]:  # replayed with the recorded thread count: exact, the bound is 0
        assert interval["mode"] == "exact" and interval["threshold"]["l2"] == 0.0
    code, out, _ = run(
        capsys, "pol", "verify", str(proof_dir / "proof"), "--calibration", str(out_file), "--json", "--threads", "2"
    )
    verdict = json.loads(out)  # another thread count: the calibrated tolerance
    assert code == 0 and verdict["mode"] == "tolerance", verdict["reasons"]
    for interval in verdict["intervals"]:
        expected = min(doc["delta"]["l2"], doc["max_relative_error"] * interval["replayed_update"]["l2"])
        assert interval["threshold"]["l2"] == pytest.approx(expected)


class _Interrupt(Hook):
    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None:
        if state.step == 6:
            raise KeyboardInterrupt


def test_train_resume_completes_an_interrupted_recording(digits, proof_dir, tmp_path, capsys):
    config = TrainConfig(epochs=1, batch_size=128)  # what the CLI options above make
    spec = spec_for_data("cnn", digits.train.input_shape, digits.train.num_classes)
    torch.set_num_threads(1)
    with pytest.raises(KeyboardInterrupt):
        record_training(
            build_model(spec, seed=0),
            digits.train,
            config,
            tmp_path / "proof",
            spec=spec,
            checkpoint_every=4,
            init_seed=0,
            hooks=[_Interrupt()],
            progress=False,
        )
    code, out, err = run(capsys, *TRAIN, "--out", str(tmp_path / "model"), "--proof", str(tmp_path / "proof"))
    assert code == 2 and "already holds a proof or a recording" in err
    code, out, _ = run(capsys, *TRAIN, "--out", str(tmp_path / "model"), "--proof", str(tmp_path / "proof"), "--resume")
    assert code == 0 and "proof of learning" in out
    code, out, _ = run(capsys, "pol", "verify", str(tmp_path / "proof"), "--data", "digits", "--all")
    assert code == 0, out
    a = json.loads((tmp_path / "model" / "model.safetensors").with_name("model.json").read_text())
    b = json.loads((proof_dir / "model" / "model.json").read_text())
    assert a["extra"]["test_accuracy"] == b["extra"]["test_accuracy"]  # the same training, interrupted or not
