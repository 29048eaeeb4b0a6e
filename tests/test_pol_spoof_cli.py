"""`modeldeed attack pol-spoof`, `pol verify --hardened`, `pol commit` and `train --statement`, end to end."""

from __future__ import annotations

import json

import pytest

from modeldeed.cli import main

pytestmark = pytest.mark.slow

TRAIN = [
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
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["pol", "commit", "--data", "digits", "--seed", "4", "--out", str(root / "commit")]) == 0
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--seed",
                "4",
                "--out",
                str(root / "wm"),
                "--proof",
                str(root / "honest"),
                "--checkpoint-every",
                "5",
                "--statement",
                str(root / "commit"),
            ]
        )
        == 0
    )
    return root


def test_forged_proof_is_accepted_by_the_reference_and_rejected_hardened(runs, capsys):
    out = runs / "spoof"
    code = main(
        [
            "attack",
            "pol-spoof",
            str(runs / "wm"),
            "--data",
            "digits",
            "--method",
            "zhang3",
            "--out",
            str(out),
            "--honest-timing-steps",
            "5",
            "--threads",
            "1",
            "--no-progress",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # the reference verifier accepted the forgery: the attack succeeded
    assert doc["reference"]["accepted"] and not doc["hardened"]["accepted"]
    assert {"initialisation_seed", "relative_error", "update_profile"} <= set(doc["hardened"]["failed"])
    assert doc["cost_ratio"]["gradient_evaluations"] > 0 and doc["honest_cost"]["gradient_evaluations"] == 135
    assert json.loads((out / "spoof.json").read_text())["proof_id"] == doc["proof_id"]

    assert main(["pol", "verify", str(out / "proof"), "--data", "digits", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["pol", "verify", str(out / "proof"), "--data", "digits", "--hardened", "--threads", "1"]) == 1
    printed = capsys.readouterr().out
    assert "REJECTED" in printed and "initialisation_seed" in printed
    assert main(
        [
            "pol",
            "verify",
            str(out / "proof"),
            "--hardened",
            "--skip-hardened",
            "initialisation_seed",
            "--skip-hardened",
            "relative_error",
            "--skip-hardened",
            "update_profile",
            "--skip-hardened",
            "dataset_membership",
            "--skip-hardened",
            "batch_order",
            "--threads",
            "1",
            "--json",
        ]
    ) in (0, 1)
    names = {c["name"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "random_intervals" in names and names.isdisjoint({"initialisation_seed", "update_profile"})


def test_judging_by_the_hardened_verifier_sets_the_exit_status(runs, capsys):
    code = main(
        [
            "attack",
            "pol-spoof",
            str(runs / "wm"),
            "--data",
            "digits",
            "--method",
            "infinitesimal",
            "--out",
            str(runs / "inf"),
            "--honest-timing-steps",
            "5",
            "--hardened",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0  # rejected: the defence held
    assert "reference verifier: ACCEPTED" in printed and "hardened verifier:  REJECTED" in printed


def test_statement_recorded_in_the_proof_is_checked(runs, capsys):
    statement = str(runs / "commit" / "statement.json")
    proof = json.loads((runs / "honest" / "proof.json").read_text())
    assert proof["statement"]["opening"]["seed"] == 4
    assert main(["pol", "verify", str(runs / "honest"), "--statement", statement, "--threads", "1"]) == 0
    assert main(["pol", "verify", str(runs / "spoof" / "proof"), "--statement", statement, "--threads", "1"]) == 1
    assert "carries no training statement" in capsys.readouterr().out


def test_bad_input_exits_2(runs, capsys):
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--seed",
                "5",
                "--out",
                str(runs / "other"),
                "--proof",
                str(runs / "p5"),
                "--statement",
                str(runs / "commit"),
            ]
        )
        == 2
    )
    assert "commits to seed 4" in capsys.readouterr().err
    assert (
        main(
            [
                "attack",
                "pol-spoof",
                str(runs / "wm"),
                "--data",
                "digits",
                "--method",
                "infinitesimal",
                "--out",
                str(runs / "spoof"),
            ]
        )
        == 2
    )  # OUT/proof exists
    assert main(["attack", "pol-spoof", str(runs / "wm"), "--data", "digits", "--method", "nope", "--out", "x"]) == 2
