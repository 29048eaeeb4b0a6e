"""`pol commit`, `train --statement`, `attack pol-spoof` and `pol verify --hardened`, end to end from the CLI."""

from __future__ import annotations

import json

import pytest

from modeldeed.cli import main

pytestmark = pytest.mark.slow

SETTINGS = [
    "--data",
    "digits",
    "--model",
    "cnn",
    "--model-args",
    '{"width": 8}',
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--seed",
    "4",
]
QUIET = ["--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    commit = ["pol", "commit", *SETTINGS, "--checkpoint-every", "5", "--out", str(root / "commit")]
    assert main(commit) == 0
    train = ["train", *SETTINGS, *QUIET, "--out", str(root / "wm"), "--proof", str(root / "honest")]
    assert main([*train, "--checkpoint-every", "5", "--statement", str(root / "commit")]) == 0
    return root


def spoof(runs, method: str, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "attack",
        "pol-spoof",
        str(runs / "wm"),
        "--data",
        "digits",
        "--method",
        method,
        "--out",
        str(runs / method),
        "--honest-timing-steps",
        "5",
        *QUIET,
        *extra,
    ]


def test_forged_proof_is_accepted_by_the_reference_and_rejected_hardened(runs, capsys):
    out = runs / "zhang3"
    code = main([*spoof(runs, "zhang3"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # the reference verifier accepted the forgery: the attack succeeded
    assert doc["reference"]["accepted"] and not doc["hardened"]["accepted"]
    assert {"initialisation_seed", "replay", "update_profile"} <= set(doc["hardened"]["failed"])
    assert doc["cost_ratio"]["gradient_evaluations"] > 0 and doc["honest_cost"]["gradient_evaluations"] == 135
    assert json.loads((out / "spoof.json").read_text())["proof_id"] == doc["proof_id"]

    assert main(["pol", "verify", str(out / "proof"), "--data", "digits", "--reference", *QUIET]) == 0
    capsys.readouterr()
    assert main(["pol", "verify", str(out / "proof"), "--data", "digits", "--hardened", *QUIET]) == 1
    printed = capsys.readouterr().out
    assert "REJECTED" in printed and "initialisation_seed" in printed and "drawn by the challenge" in printed
    switched = ["--skip-hardened", "initialisation_seed", "--skip-hardened", "update_profile"]
    assert main(["pol", "verify", str(out / "proof"), "--hardened", *switched, *QUIET, "--json"]) == 1
    names = {c["name"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "replay" in names and names.isdisjoint({"initialisation_seed", "update_profile"})


@pytest.mark.parametrize(
    ("method", "extra", "failed", "reason"),
    [
        ("steer-momentum", ["--epochs", "1"], {"replay"}, "optimizer/momentum_buffer/"),
        ("partial-trained", ["--epochs", "1"], {"settings", "frozen_tensors", "replay"}, "not trained differ from W_0"),
        ("grind-challenge", ["--tries", "500", "--hardened"], {"replay"}, "drawn by the challenge"),
    ],
)
def test_adaptive_spoofs_from_the_command_line(runs, capsys, method, extra, failed, reason):
    code = main([*spoof(runs, method, *extra), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["reference"]["accepted"], doc["reference"]["reasons"]  # the paper's verifier is fooled
    assert code == (0 if "--hardened" in extra else 1)  # --hardened: judged (exit status) by the hardened verdict
    assert not doc["hardened"]["accepted"] and set(doc["hardened"]["failed"]) == failed
    assert any(reason in r for r in doc["hardened"]["reasons"])
    assert main(["pol", "verify", str(runs / method / "proof"), "--hardened", *QUIET]) == 1
    assert reason in capsys.readouterr().out


def test_statement_recorded_in_the_proof_is_checked(runs, capsys):
    statement = str(runs / "commit" / "statement.json")
    proof = json.loads((runs / "honest" / "proof.json").read_text())
    assert proof["statement"]["opening"]["seed"] == 4 and proof["version"] == 2
    for given in (statement, str(runs / "commit")):  # the file or `pol commit`'s directory
        assert main(["pol", "verify", str(runs / "honest"), "--statement", given, *QUIET]) == 0
        assert "ACCEPTED" in capsys.readouterr().out
    assert main(["pol", "verify", str(runs / "zhang3" / "proof"), "--statement", statement, *QUIET]) == 1
    assert "carries no training statement" in capsys.readouterr().out


def test_pol_commit_refuses_to_overwrite_and_train_refuses_other_settings(runs, capsys):
    commit = ["pol", "commit", *SETTINGS, "--checkpoint-every", "5", "--out", str(runs / "commit")]
    before = (runs / "commit" / "statement.json").read_bytes()
    assert main(commit) == 2
    assert "already exists; a statement is made once" in capsys.readouterr().err
    assert (runs / "commit" / "statement.json").read_bytes() == before
    other = ["train", *SETTINGS, *QUIET, "--out", str(runs / "m2"), "--proof", str(runs / "p2")]
    assert main([*other, "--checkpoint-every", "5", "--lr", "0.04", "--statement", str(runs / "commit")]) == 2
    err = capsys.readouterr().err
    assert "not the one the statement commits to" in err and "lr 0.04 (statement: 0.05)" in err
    assert main([*other, "--checkpoint-every", "4", "--statement", str(runs / "commit")]) == 2
    assert "k = 4, the statement's is 5" in capsys.readouterr().err


def test_a_watermarked_run_passes_the_hardened_verifier(tmp_path, capsys):
    key = tmp_path / "key"
    assert main(["watermark", "keygen", "--data", "digits", "--size", "8", "--out", str(key)]) == 0
    base = ["--data", "digits", "--model", "cnn", "--model-args", '{"width": 4}', "--epochs", "2", "--batch-size", "64"]
    commit = ["pol", "commit", *base, "--checkpoint-every", "4", "--watermark", str(key), "--out", str(tmp_path / "c")]
    assert main(commit) == 0
    statement = json.loads((tmp_path / "c" / "statement.json").read_text())
    assert statement["triggers"]["count"] == 8 and len(statement["triggers"]["key_ids"]) == 1
    train = ["train", *base, *QUIET, "--out", str(tmp_path / "m"), "--proof", str(tmp_path / "p")]
    assert main([*train, "--checkpoint-every", "4", "--watermark", str(key), "--statement", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["pol", "verify", str(tmp_path / "p"), "--hardened", "--statement", str(tmp_path / "c"), *QUIET]) == 0
    out = capsys.readouterr().out
    assert "dataset_membership  passed" in out and "ACCEPTED" in out
    plain = ["train", *base, *QUIET, "--out", str(tmp_path / "m2"), "--proof", str(tmp_path / "p2")]
    assert main([*plain, "--checkpoint-every", "4", "--statement", str(tmp_path / "c")]) == 2
    assert "train with --watermark KEYDIR" in capsys.readouterr().err


def test_bad_input_exits_2(runs, tmp_path, capsys):
    import numpy as np

    taken = ["attack", "pol-spoof", str(runs / "wm"), "--data", "digits", "--method", "infinitesimal"]
    assert main([*taken, "--out", str(runs / "zhang3")]) == 2  # OUT/proof exists
    np.savez(tmp_path / "other.npz", x=np.zeros((40, 1, 12, 12), np.uint8), y=np.arange(40) % 3)
    capsys.readouterr()
    assert main(["pol", "verify", str(runs / "honest"), "--data", f"npz:{tmp_path / 'other.npz'}", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "is not the one this proof was trained on (digits: 1438 samples of [1, 8, 8]" in err
    assert err.startswith("modeldeed: error: ") and "Traceback" not in err
    assert main(["attack", "pol-spoof", str(runs / "wm"), "--data", "digits", "--method", "nope", "--out", "x"]) == 2
