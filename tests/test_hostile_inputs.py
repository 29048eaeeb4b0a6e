"""Hostile inputs of issue 12 outside proofs and keys: each is exit 2 (bad input) with one line naming the
file, in bounded time and memory. Architectures, training settings, command-line numbers, dataset files,
a failing disk."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import write_mnist_dir
from PIL import Image

from modeldeed.cli import main
from modeldeed.data import load_dataset
from modeldeed.errors import DataError, FormatError, ModeldeedError
from modeldeed.files import atomic_path, read_json_object, write_bytes_atomic
from modeldeed.models import ModelInfo, ModelSpec, build_model, load_model, measure_model, save_model, spec_for_data
from modeldeed.training import TrainConfig

SHAPE = (1, 8, 8)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("modeldeed: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = spec_for_data("cnn", SHAPE, 10)
    return save_model(
        tmp_path_factory.mktemp("m") / "m", build_model(spec, seed=0), ModelInfo(spec, tuple("0123456789"), SHAPE)
    )


def edited_model(model_dir: Path, tmp_path: Path, change) -> Path:
    out = tmp_path / "edited"
    out.mkdir()
    for name in ("model.json", "model.safetensors"):
        (out / name).write_bytes((model_dir / name).read_bytes())
    doc = json.loads((out / "model.json").read_text())
    change(doc)
    (out / "model.json").write_text(json.dumps(doc))
    return out


# ------------------------------------------------------------------------------------------ architectures


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ({"width": 2**40}, "field 'width': Input should be less than or equal to 4096"),
        ({"width": 0}, "field 'width': Input should be greater than or equal to 1"),
        ({"width": -5}, "field 'width'"),
        ({"width": "32"}, "field 'width': Input should be a valid integer"),
        ({"width": 32.0}, "field 'width': Input should be a valid integer"),
        ({"width": True}, "field 'width': Input should be a valid integer"),
        ({"input_size": []}, "field 'input_size': List should have at least 2 items"),
        ({"input_size": [2, 2]}, "field 'input_size[0]': Input should be greater than or equal to 4"),
        ({"input_size": [10**9, 8]}, "field 'input_size[0]': Input should be less than or equal to 8192"),
        ({"in_channels": 0}, "field 'in_channels'"),
        ({"num_classes": -1}, "field 'num_classes'"),
        ({"depth": 50}, "field 'depth': Extra inputs are not permitted"),
    ],
)
def test_architecture_arguments_are_checked_before_anything_is_built(arguments: dict, problem: str) -> None:
    spec = ModelSpec("cnn", {"in_channels": 1, "num_classes": 10, "input_size": [8, 8], **arguments})
    with pytest.raises(
        ModeldeedError, match=r"model 'cnn' arguments: " + problem.replace("[", r"\[").replace("]", r"\]")
    ):
        build_model(spec)


def test_a_720_gb_layer_in_model_json_is_refused_in_milliseconds(model_dir: Path, tmp_path: Path, capsys) -> None:
    edited = edited_model(model_dir, tmp_path, lambda d: d["arguments"].update(width=3_000_000))
    before, started = peak_mb(), time.perf_counter()
    assert main(["evaluate", str(edited), "--data", "digits"]) == 2
    assert time.perf_counter() - started < 1.0 and peak_mb() - before < 100
    one_line_error(capsys, f"{edited / 'model.json'}: model 'cnn' arguments: field 'width'")


def test_a_huge_model_is_sized_on_the_meta_device_and_refused(tmp_path: Path, monkeypatch) -> None:
    """A (trusted) user factory has no declared arguments: its size on the meta device is what refuses it."""
    (tmp_path / "huge_models.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def huge(width=10, **kwargs):
            return nn.Sequential(nn.Flatten(), nn.Linear(width, width))
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec("huge_models:huge", {"width": 420_000})  # 1.76e11 parameters: 705 GB of float32
    before, started = peak_mb(), time.perf_counter()
    with pytest.raises(ModeldeedError, match=r"176,400,420,000 parameters and buffers .* more than the 1,000,000,000"):
        build_model(spec, trust_code=True)
    assert time.perf_counter() - started < 1.0 and peak_mb() - before < 100
    assert measure_model(ModelSpec("huge_models:huge", {"width": 10}), trust_code=True).elements == 110
    sys.modules.pop("huge_models", None)


def test_model_json_data_arguments_must_agree_with_its_shape(model_dir: Path, tmp_path: Path) -> None:
    edited = edited_model(model_dir, tmp_path, lambda d: d["arguments"].update(num_classes=3))
    with pytest.raises(
        FormatError, match=r"model.json: field 'arguments.num_classes' is 3, but input_shape and classes say 10"
    ):
        load_model(edited)


def test_weights_are_bounded_by_the_architecture_before_the_model_is_built(model_dir: Path, tmp_path: Path) -> None:
    """A model.json for a 1 GB model beside a small weights file: refused by the file's size, nothing built."""
    edited = edited_model(model_dir, tmp_path, lambda d: d["arguments"].update(width=4096))
    before = peak_mb()
    with pytest.raises(FormatError, match=r"model.safetensors: is \d+ bytes, too small for the \d+ bytes of tensors"):
        load_model(edited)
    assert peak_mb() - before < 100


@pytest.mark.parametrize(
    "model_args, problem",
    [
        ('{"width": "8"}', "field 'width': Input should be a valid integer"),
        ("[1, 2]", "model arguments must be a JSON object, found list"),
        ('{"width": NaN}', "--model-args: not valid JSON"),
        ('{"width": 8, "width": 9}', "appears twice"),
        ('{"num_classes": 3}', "model arguments num_classes come from the data"),
    ],
)
def test_model_args_from_the_command_line(model_args: str, problem: str, tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", "digits", "--model-args", model_args, "--out", str(tmp_path / "m")]) == 2
    one_line_error(capsys, problem)


def test_model_directory_that_is_a_file_or_holds_a_fifo(model_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(tmp_path / "file"), "--data", "digits"]) == 2
    one_line_error(capsys, "file: is a file, not a model directory")
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    (fifo_dir / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    os.mkfifo(fifo_dir / "model.safetensors")
    assert main(["evaluate", str(fifo_dir), "--data", "digits"]) == 2
    one_line_error(capsys, "model.safetensors: is not a regular file (a named pipe)")


# ---------------------------------------------------------------------------------------- training settings


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"seed": -1}, r"seed must lie in \[0, 18446744073709551615\]"),
        ({"seed": 2**64}, "seed must lie in"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"lr": float("nan")}, "learning rate must be a finite number"),
        ({"lr": float("inf")}, "learning rate must be a finite number"),
        ({"lr": 0.0}, r"learning rate must lie in \(0, "),
        ({"momentum": float("nan")}, "momentum must be a finite number"),
        ({"weight_decay": -1e-4}, "weight decay must lie in"),
        ({"epochs": 10**9}, r"epochs must lie in \[0, 100000\]"),
        ({"epochs": "5"}, "epochs must be an integer"),
        ({"batch_size": True}, "batch size must be an integer"),
        ({"batch_size": 2**40}, "batch size must lie in"),
        ({"lr_gamma": 0.0}, "lr gamma must lie in"),
        ({"lr_gamma": 1e5, "lr": 1e5, "lr_milestones": tuple(range(1, 70))}, "the schedule reaches learning rate inf"),
        ({"lr_gamma": 1e-200, "lr_milestones": (1, 2)}, "the schedule reaches learning rate 0 after 2 milestone"),
        ({"lr_milestones": (1, -2)}, "lr milestones must be epochs"),
        ({"lr_milestones": (1.5,)}, "lr milestones must be epochs"),
        ({"device": "tpu"}, "device must be cpu, cuda or cuda:N"),
    ],
)
def test_training_settings_are_range_checked(settings: dict, problem: str) -> None:
    with pytest.raises(ModeldeedError, match=problem):
        TrainConfig(**settings)


def test_training_settings_from_json_are_range_checked() -> None:
    with pytest.raises(ModeldeedError, match="epochs must be an integer"):
        TrainConfig.from_json({"epochs": [1]})
    with pytest.raises(ModeldeedError, match="must be a JSON object"):
        TrainConfig.from_json([1])  # type: ignore[arg-type]
    assert TrainConfig(seed=2**64 - 1).seed == 2**64 - 1


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["train", "--lr", "nan"], "argument --lr: must be a finite number, got 'nan'"),
        (["train", "--lr", "inf"], "argument --lr: must be a finite number"),
        (["train", "--gamma", "1e999"], "argument --gamma: must be a finite number"),
        (["train", "--momentum=-inf"], "argument --momentum: must be a finite number"),
        (["train", "--seed", "-1"], "argument --seed: must lie in [0, 18446744073709551615], got -1"),
        (["train", "--seed", str(2**64)], "argument --seed: must lie in"),
        (["train", "--epochs", "9" * 30], "argument --epochs: must lie in [0, 100000]"),
        (["train", "--epochs", "9" * 5000], "argument --epochs: must be an integer in"),
        (["train", "--threads", "0"], "argument --threads: must lie in [1, 4096]"),
        (["train", "--gamma", "1e-300", "--milestones", "1,2"], "the schedule reaches learning rate 0"),
        (["watermark", "keygen", "--epsilon", "nan"], "argument --epsilon: must be a finite number"),
        (["attack", "noise", "m", "--key", "k", "--std", "inf"], "argument --std: must be a finite number"),
        (["pol", "verify", "p", "--max-relative-error", "nan"], "argument --max-relative-error: must be a finite"),
    ],
)
def test_every_number_on_the_command_line_is_checked(argv: list[str], problem: str, tmp_path: Path, capsys) -> None:
    if argv[0] != "pol":  # the options every other command requires
        argv = [*argv, "--data", "digits", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    one_line_error(capsys, problem)


# ------------------------------------------------------------------------------------------------- datasets


def test_an_idx_header_declaring_10_to_the_18_images_is_refused_before_allocating(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path, compress=False)
    header = (0x803).to_bytes(4, "big") + (10**9).to_bytes(4, "big") + (10**5 // 3).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    before = peak_mb()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: image size 33333×33333 outside 1..8192"):
        load_dataset("mnist", tmp_path)
    header = (0x803).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(DataError, match=r"its header declares 4294967295×28×28 values of .* bytes, more than"):
        load_dataset("mnist", tmp_path)
    assert peak_mb() - before < 100


def test_a_gzip_bomb_is_refused_by_its_expansion(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path, compress=True)
    header = (0x803).to_bytes(4, "big") + (100_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(100_000 * 784)))
    before = peak_mb()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: decompresses to more than the .* bytes"):
        load_dataset("mnist", tmp_path)
    assert peak_mb() - before < 100


def test_a_cifar_file_of_the_wrong_size_or_a_fifo(tmp_path: Path) -> None:
    directory = tmp_path / "cifar-10-batches-bin"
    directory.mkdir()
    for i in range(1, 6):
        (directory / f"data_batch_{i}.bin").write_bytes(bytes(3073 * 2))
    (directory / "test_batch.bin").write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(DataError, match=r"test_batch.bin: size 6151 is not a positive multiple of the 3073-byte"):
        load_dataset("cifar10", tmp_path)
    (directory / "test_batch.bin").unlink()
    os.mkfifo(directory / "test_batch.bin")
    with pytest.raises(DataError, match=r"test_batch.bin: is not a regular file \(a named pipe\)"):
        load_dataset("cifar10", tmp_path)


def npz_with(path: Path, **members: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_npz_arrays_are_sized_from_their_headers(tmp_path: Path) -> None:
    labels = npy_header((4,), "<i8") + bytes(32)
    huge = npz_with(tmp_path / "huge.npz", x=npy_header((10**6, 3, 1000, 1000), "|u1") + bytes(100), y=labels)
    before = peak_mb()
    with pytest.raises(
        DataError, match=r"huge.npz: array 'x' of shape \(1000000, 3, 1000, 1000\) needs .* the file holds fewer"
    ):
        load_dataset(f"npz:{huge}")
    bomb = npz_with(tmp_path / "bomb.npz", x=npy_header((200, 1, 1000, 1000), "|u1") + bytes(200_000_000), y=labels)
    with pytest.raises(DataError, match=r"bomb.npz: array 'x' declares 200,000,\d+ bytes"):
        load_dataset(f"npz:{bomb}")
    assert peak_mb() - before < 150
    objects = npz_with(tmp_path / "obj.npz", x=npy_header((4, 1, 4, 4), "|O") + bytes(64), y=labels)
    with pytest.raises(DataError, match=r"obj.npz: array 'x' has dtype object; plain integers or floats only"):
        load_dataset(f"npz:{objects}")
    np.savez(tmp_path / "labels.npz", x=np.zeros((2, 1, 4, 4), np.uint8), y=np.array([0, 10**12]))
    with pytest.raises(DataError, match=r"labels.npz: labels must lie in 0..99999"):
        load_dataset(f"npz:{tmp_path / 'labels.npz'}")


def test_image_folders_bound_every_image_and_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    Image.new("L", (5, 5)).save(root / "a" / "0.png")
    Image.new("L", (9000, 10)).save(root / "a" / "1.png")  # a small file that declares a wide image
    with pytest.raises(DataError, match=r"1.png: image of 9000×10 pixels; at most 8192 per side"):
        load_dataset(f"folder:{root}")
    (root / "a" / "1.png").unlink()
    (root / "a" / "1.png").write_bytes(b"GIF89a" + bytes(20))
    with pytest.raises(DataError, match=r"1.png: not a readable image"):
        load_dataset(f"folder:{root}")
    (root / "a" / "1.png").unlink()
    outside = tmp_path / "secret.png"
    Image.new("L", (5, 5)).save(outside)
    (root / "a" / "1.png").symlink_to(outside)
    with pytest.raises(
        DataError, match=r"1.png: is outside .*images \(a symbolic link out of the directory is not followed\)"
    ):
        load_dataset(f"folder:{root}")
    (root / "a" / "1.png").unlink()
    (root / "b").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match=r"images/b: is a link out of"):
        load_dataset(f"folder:{root}")


def test_unknown_dataset_is_exit_2(capsys, tmp_path: Path) -> None:
    assert main(["train", "--data", "imagenet-22k", "--out", str(tmp_path / "m")]) == 2
    one_line_error(capsys, "unknown dataset 'imagenet-22k'")


# ---------------------------------------------------------------------------------------------- failing disk


def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught, atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")
    assert caught.value.filename == str(tmp_path / "out.bin") and caught.value.errno == 28
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as caught:
        write_bytes_atomic(tmp_path / "file" / "below" / "out.bin", b"x")
    assert "file" in str(caught.value.filename)


# One subprocess runs every command twice: first with its files limited to a few KB (writes past the limit
# fail with EFBIG, as on a full disk; Python ignores SIGXFSZ), then with the limit lifted, in the same
# directory. One process, so that PyTorch is imported once.
FULL_DISK = """
import contextlib, io, json, resource, sys
from modeldeed.cli import main
results = []
for limit, argv in json.loads(sys.argv[1]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit or resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""
TRAIN = ["train", "--data", "digits", "--epochs", "1", "--no-progress", "--out", "m"]
KEYGEN = ["watermark", "keygen", "--data", "digits", "--size", "8", "--out", "k"]
RECORD = ["train", "--data", "digits", "--epochs", "1", "--no-progress", "--out", "pm", "--proof", "p"]


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list]]:
    cwd = tmp_path_factory.mktemp("disk")
    plan = [
        [2000, TRAIN],
        [None, TRAIN],
        [2000, KEYGEN],
        [None, KEYGEN],
        [20_000, [*RECORD, "--checkpoint-every", "8"]],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, json.dumps(plan)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return cwd, json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("first, failing", [(0, "m/model.safetensors"), (2, "k/marking_key.safetensors")])
def test_a_full_disk_is_exit_2_naming_the_file_and_a_rerun_succeeds(full_disk, first: int, failing: str) -> None:
    cwd, results = full_disk
    code, err = results[first]
    assert code == 2 and err.startswith(f"modeldeed: error: {failing}: ") and "File too large" in err, err
    assert err.count("\n") == 1
    assert results[first + 1][0] == 0, results[first + 1]  # the same command, same directory, disk freed
    assert (cwd / failing).is_file()
    assert not [p for p in cwd.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_while_recording_a_proof_is_exit_2(full_disk) -> None:
    code, err = full_disk[1][4]
    assert code == 2 and err.startswith("modeldeed: error: p/") and err.endswith(": File too large\n"), err
    assert err.count("\n") == 1


# -------------------------------------------------------------------------------------------------- reports


def experiment_doc(**changes) -> dict:
    setting = {
        "data": "digits",
        "model": "cnn",
        "epochs": 1,
        "batch_size": 32,
        "lr": 0.05,
        "seed": 0,
        "trigger_size": 8,
    }
    doc = {"format": "modeldeed.experiment", "version": 1, "experiment": "functionality", "setting": setting}
    return {**doc, "machine": {}, "seconds": 1.0, "results": {"rows": []}, **changes}


@pytest.mark.parametrize(
    "doc, problem",
    [
        (experiment_doc(results={"no_rows": 1}), None),  # a missing or mistyped layout: named, exit 2
        (experiment_doc(results={"rows": [{"model": "x"}]}), None),
        (experiment_doc(seconds="soon"), "field 'seconds'"),
        (experiment_doc(experiment="../../x"), "field 'experiment'"),
        (experiment_doc(setting={"data": "digits"}), "field 'setting.model': Field required"),
    ],
)
def test_a_malformed_results_file_is_exit_2_naming_it(doc: dict, problem: str | None, tmp_path: Path, capsys) -> None:
    (tmp_path / "functionality.json").write_text(json.dumps(doc))
    assert main(["report", str(tmp_path)]) == 2
    if problem is None:  # the report's verdict or the section names the directory or the file
        one_line_error(capsys, str(tmp_path))
    else:
        one_line_error(capsys, "functionality.json: ", problem)


# ---------------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("unit", [b"[],", b"{},", b'{"a":{"b":[]}},', b"1,"])
def test_a_document_of_millions_of_tiny_values_is_refused_before_decoding(unit: bytes, tmp_path: Path) -> None:
    """16 MB of `[],[],...` would be a gigabyte of Python lists and a minute of checking."""
    path = tmp_path / "model.json"
    path.write_bytes(b"[" + unit * ((15 << 20) // len(unit)) + b"1]")
    before, started = peak_mb(), time.perf_counter()
    with pytest.raises(FormatError, match=r"model.json: would take about \d+ MiB as Python objects, more than the 256"):
        read_json_object(path)
    assert time.perf_counter() - started < 2.0 and peak_mb() - before < 100
