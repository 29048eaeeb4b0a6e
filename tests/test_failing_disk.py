"""A failing disk: every command that writes ends with exit 2 naming the path, and every state it leaves can be
resumed or cleanly restarted; a model lost after its proof was complete is rebuilt from the proof.

The disk is made to fail for real: the child process runs under RLIMIT_FSIZE (write() fails with EFBIG, as it
fails with ENOSPC on a full disk; both are OSErrors the CLI reports the same way), or a path's parent is a
regular file (ENOTDIR), so the failure comes from the kernel, not from a mock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("pol_hostile_driver.py")
TINY = ["--data", "digits", "--epochs", "1", "--model-args", '{"width": 4}']
TRAIN = ["train", *TINY, "--threads", "1", "--no-progress"]


def cli(*argv: str, fsize: int | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if fsize is not None:
        env["MODELDEED_TEST_FSIZE"] = str(fsize)
    done = subprocess.run(
        [sys.executable, str(DRIVER), *argv], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    return done.returncode, done.stdout + done.stderr


def one_error(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("modeldeed: error:")]
    assert len(lines) == 1 and "Traceback" not in out, out
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["train", *TINY[:-2], "--threads", "1", "--no-progress", "--out", "{d}/m"], "{d}/m/model.safetensors"),
        ([*TRAIN, "--out", "{d}/m", "--proof", "{d}/p"], "{d}/p/"),
        (["pol", "commit", *TINY, "--out", "{d}/s"], "{d}/s/"),
        (["watermark", "keygen", "--data", "digits", "--size", "8", "--out", "{d}/k"], "{d}/k/"),
    ],
)
def test_a_full_disk_is_exit_2_naming_the_file(tmp_path, argv, path):
    code, out = cli(*(a.replace("{d}", str(tmp_path)) for a in argv), fsize=600)
    line = one_error(out)
    assert code == 2 and line.startswith(f"modeldeed: error: {path.replace('{d}', str(tmp_path))}")
    assert "File too large" in line


def test_a_recording_that_failed_before_its_first_checkpoint_starts_again_in_place(tmp_path):
    argv = [*TRAIN, "--out", str(tmp_path / "m"), "--proof", str(tmp_path / "p"), "--checkpoint-every", "8"]
    code, out = cli(*argv, fsize=6000)  # the header fits, checkpoint 0 does not
    assert code == 2 and "step-00000000.safetensors: File too large" in one_error(out)
    assert (tmp_path / "p" / "recording" / "header.json").is_file() and not (tmp_path / "m").exists()
    code, out = cli(*argv, "--resume")
    assert code == 2 and "run the same command without --resume to start it again" in one_error(out)
    code, out = cli(*argv)  # the disk has room again
    assert code == 0, out
    clean = tmp_path / "clean"
    argv_clean = [*TRAIN, "--out", str(clean / "m"), "--proof", str(clean / "p"), "--checkpoint-every", "8"]
    assert cli(*argv_clean)[0] == 0
    assert (tmp_path / "p" / "proof.json").read_bytes() == (clean / "p" / "proof.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["checkpoints", "proof.json"]


def test_a_model_lost_after_the_proof_was_complete_is_rebuilt_bit_for_bit(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the model directory should go")
    argv = [*TRAIN, "--proof", str(tmp_path / "p"), "--checkpoint-every", "8"]
    code, out = cli(*argv, "--out", str(blocked / "m"))
    assert code == 2 and one_error(out).startswith(f"modeldeed: error: {blocked / 'm'}")
    assert (tmp_path / "p" / "proof.json").is_file()  # the proof completed, the model was never saved
    reference = tmp_path / "reference"
    assert cli(*TRAIN, "--out", str(reference), "--proof", str(tmp_path / "p2"), "--checkpoint-every", "8")[0] == 0

    code, out = cli("pol", "extract-model", str(tmp_path / "p"), "--out", str(tmp_path / "x"), "--data", "digits")
    assert code == 0 and "rebuilt from its last checkpoint" in out
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert json.loads((tmp_path / "x" / "model.json").read_text()) == json.loads((reference / "model.json").read_text())
    code, out = cli("pol", "extract-model", str(tmp_path / "p"), "--out", str(tmp_path / "x"), "--data", "digits")
    assert code == 2 and "already holds a model" in one_error(out) and "--force" in out

    blocked.unlink()  # the disk is fixed: `train --resume` finishes the run from the complete proof
    code, out = cli(*argv, "--out", str(blocked / "m"), "--resume")
    assert code == 0 and "the proof was already complete" in out
    assert (blocked / "m" / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert (blocked / "m" / "model.json").read_bytes() == (reference / "model.json").read_bytes()
    code, out = cli(*[a if a != "1" else "2" for a in argv], "--out", str(tmp_path / "other"), "--resume")
    assert code == 2 and "recorded with other settings" in one_error(out)
