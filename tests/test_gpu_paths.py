"""What of the GPU paths runs without a GPU: the CUDA determinism record and how it is compared, and clean
refusals where CUDA is asked for and absent. Nothing here needs a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeldeed.cli import main
from modeldeed.pol.environment import current_environment, differences

ROOT = Path(__file__).resolve().parent.parent


def test_the_environment_records_the_determinism_settings():
    from modeldeed.training import configure_determinism

    configure_determinism(True)
    here = current_environment("cpu", "float32", True)
    assert here.cudnn_deterministic is True and here.cudnn_benchmark is False
    assert here.deterministic_algorithms is True
    assert here.cublas_workspace_config == ":4096:8"  # set before any CUDA work, as cuBLAS needs it


def test_cuda_determinism_settings_are_compared_between_two_cuda_runs_only():
    base = current_environment("cpu", "float32", True)
    cuda = base.model_copy(update={"device": "cuda", "device_type": "cuda", "cuda": "12.4", "cudnn": 90100})
    benchmark = cuda.model_copy(update={"cudnn_benchmark": True, "threads": base.threads + 1})
    assert differences(cuda, benchmark) == ["cudnn_benchmark: False recorded, True here"]  # threads ignored on CUDA
    assert differences(base, base.model_copy(update={"cudnn_benchmark": True})) == []  # informational on a CPU
    assert "device_type: cuda recorded, cpu here" in differences(cuda, base)  # another device: the tolerance
    old = cuda.model_copy(update={"cublas_workspace_config": None})
    assert differences(old, cuda) == ["cublas_workspace_config: None recorded, :4096:8 here"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_asked_for_without_cuda_is_refused_cleanly(capsys, tmp_path):
    assert main(["train", "--data", "digits", "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "m")]) == 2
    assert "--device cuda was asked for, but PyTorch sees no CUDA device" in capsys.readouterr().err
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and "no CUDA device" in done.stderr and done.stdout == ""
