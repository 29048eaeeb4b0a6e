"""Where a proof was recorded, and whether a replay here can be required to be bit-identical.

On one CPU with one PyTorch build and one thread count, modeldeed's seeded, deterministic training step is a
pure function: a replay reproduces every bit. Change the thread count, the CPU's vector capability, the
PyTorch version or the device, and floating-point sums are taken in another order; over k steps the
difference grows (chaotically: measured on Fashion-MNIST/cnn, 100 steps recorded with 2 threads and replayed
with 1 end 10-20 % of the interval's own update away). So the verifier requires exact replay when the
environment matches and a tolerance elsewhere.

The record is the prover's word. A false "same environment" claim only hurts the prover (its honest replay
then has to be exact, and is not); a false "different environment" claim buys the tolerance, which is why
the tolerance must stay a fraction of each interval's own update (see `pol.tolerance`).
"""

from __future__ import annotations

import os
import platform
from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from ..schema import Document

Text = Annotated[str, Field(max_length=512)]

# The fields whose values change a replay's floating-point results; the others are informational.
REPLAY_FIELDS = (
    "device_type",
    "device_name",
    "dtype",
    "torch",
    "threads",
    "cpu_capability",
    "machine",
    "cuda",
    "cudnn",
    "deterministic",
)

# Compared only when both the recording and the replay run on CUDA (cuDNN's algorithm choice, cuBLAS's workspace).
CUDA_FIELDS = ("cudnn_deterministic", "cudnn_benchmark", "deterministic_algorithms", "cublas_workspace_config")


class Environment(Document):
    """The environment record of a proof (proof.json field `environment`)."""

    device: Text
    device_type: Annotated[str, Field(pattern=r"^(cpu|cuda)$")]
    device_name: Text | None = None
    dtype: Text
    torch: Text
    threads: Annotated[int, Field(ge=1, le=1 << 20)]
    cpu_capability: Text | None = None
    machine: Text
    cuda: Text | None = None
    cudnn: int | None = None
    deterministic: bool
    # CUDA determinism as the run set it (None in proofs recorded before these were kept): compared between two
    # CUDA environments, where they change which kernels run; informational on the CPU
    cudnn_deterministic: bool | None = None
    cudnn_benchmark: bool | None = None
    deterministic_algorithms: bool | None = None
    cublas_workspace_config: Text | None = None
    python: Text
    numpy: Text
    platform: Text


def model_dtype(model: torch.nn.Module) -> str:
    """The floating-point dtype(s) of the model's parameters, e.g. "float32"."""
    kinds = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()})
    return ",".join(kinds) or "none"


def current_environment(device: str, dtype: str, deterministic: bool, threads: int | None = None) -> Environment:
    """This process's environment for a run (or a replay) on `device` with parameters of `dtype`."""
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    cuda = device_type == "cuda" and torch.cuda.is_available()
    capability = None
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # pragma: no cover - very old or unusual builds
        capability = None
    return Environment(
        device=device,
        device_type=device_type,
        device_name=torch.cuda.get_device_name(device) if cuda else None,
        dtype=dtype,
        torch=torch.__version__,
        threads=threads if threads is not None else torch.get_num_threads(),
        cpu_capability=capability,
        machine=platform.machine(),
        cuda=torch.version.cuda if cuda else None,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        deterministic=deterministic,
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        deterministic_algorithms=bool(torch.are_deterministic_algorithms_enabled()),
        cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        python=platform.python_version(),
        numpy=np.__version__,
        platform=platform.platform(),
    )


def differences(recorded: Environment, here: Environment) -> list[str]:
    """The replay-relevant fields that differ, as "field: recorded vs here" (empty: the same environment).

    On a CUDA device the CPU thread count does not change the GPU's kernels, so it is not compared there.
    """
    out = []
    both_cuda = recorded.device_type == "cuda" and here.device_type == "cuda"
    for name in REPLAY_FIELDS + (CUDA_FIELDS if both_cuda else ()):
        if name == "threads" and both_cuda:
            continue
        a, b = getattr(recorded, name), getattr(here, name)
        if a != b:
            out.append(f"{name}: {a} recorded, {b} here")
    return out
