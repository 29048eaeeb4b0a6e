"""`pol` and `train --proof` options: 0 epochs refused, --statement as a directory or a file everywhere, one-line
errors (exit 2) for bad input and exit 1 only for a well-formed proof that is rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeldeed.cli import main

SETTINGS = [
    "--data",
    "digits",
    "--epochs",
    "1",
    "--seed",
    "3",
    "--model-args",
    '{"width": 4}',
    "--checkpoint-every",
    "8",
]


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A statement, and a proof recorded under it given as the statement's directory."""
    w = tmp_path_factory.mktemp("inputs")
    threads = torch.get_num_threads()
    try:
        assert main(["pol", "commit", *SETTINGS, "--out", str(w / "commit")]) == 0
        argv = ["train", *SETTINGS, "--threads", "1", "--no-progress", "--out", str(w / "m"), "--proof", str(w / "p")]
        assert main([*argv, "--statement", str(w / "commit")]) == 0
    finally:
        torch.set_num_threads(threads)
    return w


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "digits", "--epochs", "0", "--out", "{w}/m0", "--proof", "{w}/p0"],
        ["pol", "commit", "--data", "digits", "--epochs", "0", "--out", "{w}/c0"],
    ],
)
def test_zero_epochs_are_refused_for_proofs_and_statements(tmp_path, capsys, argv):
    code, _, err = run(capsys, *(a.replace("{w}", str(tmp_path)) for a in argv))
    assert code == 2 and err.startswith("modeldeed: error: --epochs must be at least 1") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing was written


def test_statement_is_a_directory_or_its_file_in_every_command(run_dir, tmp_path, capsys):
    torch.set_num_threads(1)
    argv = ["train", *SETTINGS, "--threads", "1", "--no-progress", "--out", str(tmp_path / "m"), "--proof"]
    code, out, _ = run(capsys, *argv, str(tmp_path / "p"), "--statement", str(run_dir / "commit" / "statement.json"))
    assert code == 0
    assert (tmp_path / "p" / "proof.json").read_bytes() == (run_dir / "p" / "proof.json").read_bytes()
    for statement in (run_dir / "commit", run_dir / "commit" / "statement.json"):
        code, out, _ = run(
            capsys, "pol", "verify", str(run_dir / "p"), "--data", "digits", "--statement", str(statement)
        )
        assert code == 0 and "ACCEPTED" in out


def test_a_statement_directory_never_reads_through_a_link_out_of_it(run_dir, tmp_path, capsys):
    folder = tmp_path / "commit"
    folder.mkdir()
    (folder / "statement.json").symlink_to(run_dir / "commit" / "statement.json")
    (folder / "opening.json").write_bytes((run_dir / "commit" / "opening.json").read_bytes())
    code, _, err = run(capsys, "pol", "verify", str(run_dir / "p"), "--data", "digits", "--statement", str(folder))
    refused = f"{folder / 'statement.json'}: is outside {folder} (a symbolic link out of the directory is not followed)"
    assert code == 2 and err == f"modeldeed: error: {refused}\n"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["model"]["arguments"].update(width=-4), "field 'model': model 'cnn' arguments: field 'width'"),
        (lambda d: d["model"]["arguments"].update(input_size=[]), "field 'input_size': List should have at least 2"),
        (lambda d: d["training"].update(lr=1e300), "learning rate must lie in"),
    ],
)
def test_a_hostile_statement_is_bad_input_before_any_model_is_built(run_dir, tmp_path, capsys, edit, problem):
    doc = json.loads((run_dir / "commit" / "statement.json").read_text())
    edit(doc)
    (tmp_path / "statement.json").write_text(json.dumps(doc))
    code, _, err = run(capsys, "pol", "verify", str(run_dir / "p"), "--statement", str(tmp_path / "statement.json"))
    assert code == 2 and err.startswith(f"modeldeed: error: {tmp_path / 'statement.json'}: ") and problem in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize(
    "argv",
    [
        ["pol", "verify", "{p}", "--data", "digits", "--max-relative={v}"],
        ["pol", "open", "{p}", "--commitment", "{c}", "--out", "{o}", "--soundness-bits={v}"],
        ["pol", "calibrate", "{p}", "--data", "digits", "--margin={v}"],
        ["train", *SETTINGS, "--out", "{o}", "--proof", "{o}/p", "--lr={v}"],
    ],
)
def test_non_finite_numbers_on_the_command_line_are_exit_2(run_dir, tmp_path, capsys, argv, value):
    names = {"{p}": run_dir / "p", "{c}": tmp_path / "c.json", "{o}": tmp_path / "o", "{v}": value}
    args = []
    for a in argv:
        for key, path in names.items():
            a = a.replace(key, str(path))
        args.append(a)
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and ("finite" in err or "must" in err), err
