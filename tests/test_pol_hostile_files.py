"""Hostile files in a proof directory: links out of it, devices, pipes, decompression bombs, oversize files.

Each attack runs the real CLI in a child process (`tests/pol_hostile_driver.py`), with a time limit, and the
child's peak memory is read back from the kernel (ru_maxrss), so "does not hang" and "stays under 1 GB" are
measured, not assumed. Nothing outside the proof directory may be read, and no error may print the outside
file's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import zstandard
from safetensors.torch import save

from modeldeed.cli import main
from modeldeed.files import sha256_file
from modeldeed.pol.checkpoints import parse_safetensors

DRIVER = Path(__file__).with_name("pol_hostile_driver.py")
TRAIN = ["train", "--data", "digits", "--epochs", "1", "--model-args", '{"width": 4}', "--threads", "1"]
GIB = 1 << 30


@pytest.fixture(scope="module")
def proof(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    threads = torch.get_num_threads()
    try:
        argv = [*TRAIN, "--out", str(root / "m"), "--proof", str(root / "p"), "--checkpoint-every", "8"]
        assert main([*argv, "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "p"


def copy_of(proof: Path, tmp_path: Path) -> Path:
    target = tmp_path / "proof"
    shutil.copytree(proof, target, symlinks=True)
    return target


def run_cli(*argv: str, timeout: float = 120) -> tuple[int, str, int]:
    """(exit status, stdout + stderr, peak RSS in bytes) of `modeldeed ARGV` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, str(DRIVER), *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = done.stdout.strip().splitlines()
    peak = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else max(before, 0) * 1024
    return done.returncode, "\n".join(lines[:-1]) + done.stderr, peak


def rehash(directory: Path, file: str) -> None:
    """Make proof.json list `file`'s current bytes (an attacker writes proof.json too)."""
    doc = json.loads((directory / "proof.json").read_text())
    data = (directory / file).read_bytes()
    for entry in doc["checkpoints"]:
        if entry["file"] == file:
            entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (directory / "proof.json").write_text(json.dumps(doc))


def test_a_checkpoint_linked_out_of_the_proof_is_never_read(proof, tmp_path):
    """fuzz/crashes/pol_checkpoint_symlink_out.sh: the original bytes moved outside, a link left in place."""
    target = copy_of(proof, tmp_path)
    name = "checkpoints/step-00000008.safetensors"
    outside = tmp_path / "outside.safetensors"
    shutil.move(target / name, outside)
    (target / name).symlink_to(outside)
    secret = sha256_file(outside)
    code, out, _ = run_cli("pol", "verify", str(target), "--data", "digits")
    assert code == 1 and "is outside" in out and "REJECTED" in out
    assert secret[:8] not in out
    for argv in (["pol", "inspect", str(target)], ["pol", "commit-proof", str(target), "--out", str(tmp_path / "c")]):
        code, out, _ = run_cli(*argv)
        assert code == 2 and f"{target / name}: is outside {target}" in out and secret[:8] not in out
    assert not (tmp_path / "c").exists()


def test_a_linked_checkpoint_directory_and_device_links_are_refused(proof, tmp_path):
    target = copy_of(proof, tmp_path)
    shutil.move(target / "checkpoints", tmp_path / "elsewhere")
    (target / "checkpoints").symlink_to(tmp_path / "elsewhere")
    code, out, _ = run_cli("pol", "verify", str(target), "--data", "digits")
    assert code == 1 and "step-00000000.safetensors: is outside" in out
    shutil.rmtree(target)
    target = copy_of(proof, tmp_path)
    name = target / "checkpoints" / "step-00000008.safetensors"
    name.unlink()
    name.symlink_to("/dev/zero")
    code, out, peak = run_cli("pol", "inspect", str(target), timeout=60)
    assert code == 2 and "step-00000008.safetensors: is outside" in out and peak < GIB


def test_a_pipe_in_place_of_a_checkpoint_does_not_hang(proof, tmp_path):
    target = copy_of(proof, tmp_path)
    name = target / "checkpoints" / "step-00000008.safetensors"
    name.unlink()
    os.mkfifo(name)
    code, out, _ = run_cli("pol", "verify", str(target), "--data", "digits", timeout=60)
    assert code == 1 and "step-00000008.safetensors: is not a regular file (a named pipe)" in out


def zstd_bomb(nbytes: int) -> bytes:
    """A zstd frame that declares and holds `nbytes` zero bytes, made in 1 MiB pieces (never held whole)."""
    stream = zstandard.ZstdCompressor(level=3, write_content_size=True).compressobj(size=nbytes)
    chunk, parts = bytes(1 << 20), []
    for _ in range(nbytes >> 20):
        parts.append(stream.compress(chunk))
    parts.append(stream.flush())
    return b"".join(parts)


def test_a_checkpoint_that_expands_to_gigabytes_is_refused_before_decompressing(proof, tmp_path):
    target = copy_of(proof, tmp_path)
    file = "checkpoints/step-00000000.safetensors"
    blobs, metadata = parse_safetensors((target / file).read_bytes(), file)
    header = json.loads(metadata["modeldeed"])
    bomb = zstd_bomb(4 * GIB)
    assert len(bomb) < (1 << 20)  # a small file ...
    name = header["entries"][0]["name"]
    header["entries"][0].update(shape=[GIB], dtype="F32")  # ... declaring 4 GiB of float32
    blobs[name] = torch.frombuffer(bytearray(bomb), dtype=torch.uint8)
    (target / file).write_bytes(save(blobs, metadata={"modeldeed": json.dumps(header, sort_keys=True)}))
    rehash(target, file)
    refused = f"{target / file}: declares {4 * GIB + 27960} bytes of tensors, more than the 308944 the architecture"
    code, out, peak = run_cli("pol", "inspect", str(target))
    assert code == 2 and refused in out and peak < GIB
    code, out, peak = run_cli("pol", "verify", str(target), "--data", "digits")
    assert code == 1 and refused in out and peak < GIB


def test_a_listed_size_beyond_the_architecture_is_refused_before_reading(proof, tmp_path):
    target = copy_of(proof, tmp_path)
    file = "checkpoints/step-00000008.safetensors"
    with open(target / file, "r+b") as handle:  # a sparse 8 GiB file: reading it would take 8 GiB
        handle.truncate(8 * GIB)
    rehash_size = 8 * GIB
    doc = json.loads((target / "proof.json").read_text())
    doc["checkpoints"][1]["size"] = rehash_size
    (target / "proof.json").write_text(json.dumps(doc))
    code, out, peak = run_cli("pol", "verify", str(target), "--data", "digits", timeout=60)
    assert code == 1 and f"proof.json says it is {rehash_size} bytes, more than the" in out and peak < GIB


def test_a_gigabyte_proof_json_is_refused_by_its_size(proof, tmp_path):
    target = copy_of(proof, tmp_path)
    with open(target / "proof.json", "r+b") as handle:
        handle.truncate(GIB)  # sparse: costs no disk, and would cost 1 GiB (and more) to read
    code, out, peak = run_cli("pol", "verify", str(target), "--data", "digits", timeout=60)
    assert code == 2 and out.strip().startswith(f"modeldeed: error: {target / 'proof.json'}: is {GIB} bytes")
    assert len(out.strip().splitlines()) == 1 and peak < GIB


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"width": 10**9}, "field 'width': Input should be less than or equal to 4096"),
        ({"width": -1}, "field 'width': Input should be greater than or equal to 1"),
        ({"input_size": []}, "field 'input_size': List should have at least 2 items"),
    ],
)
def test_a_hostile_architecture_in_proof_json_is_bad_input(proof, tmp_path, capsys, arguments, problem):
    target = copy_of(proof, tmp_path)
    doc = json.loads((target / "proof.json").read_text())
    doc["model"]["arguments"].update(arguments)
    (target / "proof.json").write_text(json.dumps(doc))
    for argv in (["pol", "verify", str(target), "--data", "digits"], ["pol", "inspect", str(target)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"modeldeed: error: {target / 'proof.json'}: field 'model': model 'cnn' arguments: ")
        assert problem in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("lr", 1e308, "learning rate must lie in"), ("lr_gamma", 1e300, "lr gamma must lie in")],
)
def test_overflowing_hyper_parameters_in_proof_json_are_bad_input(proof, tmp_path, capsys, field, value, problem):
    target = copy_of(proof, tmp_path)
    doc = json.loads((target / "proof.json").read_text())
    doc["training"][field] = value
    (target / "proof.json").write_text(json.dumps(doc))
    assert main(["pol", "verify", str(target), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modeldeed: error: {target / 'proof.json'}: field 'training'") and problem in err


def test_stored_sample_files_are_bounded_by_their_declared_count_before_reading(tmp_path):
    from modeldeed.errors import FormatError
    from modeldeed.pol.proof import FileEntry
    from modeldeed.pol.store import MAX_STORED_SAMPLE_BYTES, load_sample_file

    name = "samples/samples-000000.safetensors"
    (tmp_path / "samples").mkdir()
    with open(tmp_path / name, "wb") as handle:
        handle.truncate(4 * GIB)  # sparse: what a listed size of 4 GiB would make the reader hold
    huge = FileEntry(name, "0" * 64, 4 * GIB)
    with pytest.raises(
        FormatError,
        match=r"10000000 stored samples of shape \[3, 32, 32\] take 122960000000 bytes, more than the "
        f"{MAX_STORED_SAMPLE_BYTES}",
    ):
        load_sample_file(tmp_path, huge, 10**7, (3, 32, 32), 10)
    with pytest.raises(FormatError, match=f"proof.json says it is {4 * GIB} bytes, more than the"):
        load_sample_file(tmp_path, huge, 8, (1, 8, 8), 10)
