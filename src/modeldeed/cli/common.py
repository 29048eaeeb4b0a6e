"""Options and small helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from ..data import DATASET_NAMES, DataSplits, load_dataset
from ..errors import ModeldeedError
from ..models import ModelInfo


def add_data_options(parser: argparse.ArgumentParser, *, required: bool = True, default: str | None = None) -> None:
    parser.add_argument(
        "--data",
        required=required and default is None,
        default=default,
        metavar="NAME",
        help=f"dataset: {', '.join(DATASET_NAMES)}" + (f" (default: {default})" if default else ""),
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the dataset's files (default: $MODELDEED_DATA, or "
        "/usr/share/datasets/fashion-mnist for fashion-mnist)",
    )


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch (default: PyTorch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow importing the user code a file names: a package.module:factory model, or the step function of "
        "a proof recorded from an own training loop (docs/own-loop.md)",
    )


def apply_runtime(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise ModeldeedError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if getattr(args, "device", "cpu").startswith("cuda") and not torch.cuda.is_available():
        raise ModeldeedError("--device cuda was asked for, but PyTorch sees no CUDA device")


def load_data(args: argparse.Namespace) -> DataSplits:
    return load_dataset(args.data, getattr(args, "data_dir", None))


def check_compatible(info: ModelInfo, data: DataSplits, model_dir: str) -> None:
    """The model's input shape and class count must match the data it is run on."""
    if tuple(data.test.input_shape) != tuple(info.input_shape):
        raise ModeldeedError(
            f"{model_dir}: the model takes inputs of shape {info.input_shape}, "
            f"but {data.name} has {data.test.input_shape}"
        )
    if len(info.classes) != data.test.num_classes:
        raise ModeldeedError(
            f"{model_dir}: the model has {len(info.classes)} classes, {data.name} has {data.test.num_classes}"
        )


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def percent(x: float) -> str:
    return f"{100 * x:.2f} %"
