"""One validator for every number on the command line, applied to the whole parser after it is built.

argparse's `type=float` accepts "nan", "inf" and "1e999", and `type=int` accepts integers of any length; a
NaN learning rate or a 10^30 epoch count then fails deep inside training with a traceback. Rather than
trusting each of ~100 options to say so, `harden_numbers` walks every (sub)parser once and wraps each
`type=float` / `type=int` option:

- every float must be finite;
- every integer must fit in a signed 64-bit integer (seeds: [0, 2**64), what NumPy and PyTorch take);
- options whose meaning fixes a range (`RANGES`, by destination name) are checked against it.

A bad number is then argparse's usual error, which `OneLineParser` prints as one line with exit status 2.
Options added later by any command get the same checks without doing anything.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ..training import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED

INT64_MAX = 2**63 - 1

# dest -> (minimum, maximum), inclusive; None for no bound on that side. Training settings are range-checked
# again, with their schedule, by TrainConfig; these give the user the error at the option itself.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "seed": (0, MAX_SEED),
    "reference_seed": (0, MAX_SEED),
    "epochs": (0, MAX_EPOCHS),
    "attack_epochs": (0, MAX_EPOCHS),
    "embed_epochs": (0, MAX_EPOCHS),
    "batch_size": (1, MAX_BATCH_SIZE),
    "threads": (1, 4096),
    "checkpoint_every": (1, INT64_MAX),
    "lr": (0, None),
    "momentum": (0, 1),
    "weight_decay": (0, None),
    "gamma": (0, None),
    "data_fraction": (0, 1),
    "train_limit": (1, INT64_MAX),
    "epsilon": (0, 1),
    "margin": (0, None),
    "max_relative_error": (0, None),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`modeldeed: error: ...`) and exit status 2, like every bad input."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("modeldeed").strip()
        where = f"{command}: " if command else ""
        hint = f" (see `{self.prog} --help`)"
        self.exit(2, f"modeldeed: error: {where}{message}{hint}\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def checked_float(bounds: tuple[float | None, float | None]) -> Callable[[str], float]:
    low, high = bounds

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r:.40}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r:.40}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must lie in {_interval(low, high)}, got {value:g}")
        return value

    parse.__name__ = "number"  # what argparse names in "invalid number value"
    return parse


def checked_int(bounds: tuple[float | None, float | None]) -> Callable[[str], int]:
    low, high = bounds
    low = -INT64_MAX - 1 if low is None else low
    high = INT64_MAX if high is None else high

    def parse(text: str) -> int:
        if len(text) > 40:
            raise argparse.ArgumentTypeError(f"must be an integer in {_interval(low, high)}")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r:.40}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in {_interval(low, high)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _interval(low: float | None, high: float | None) -> str:
    def show(x: float | None, inf: str) -> str:
        return inf if x is None else (f"{x:g}" if isinstance(x, float) else str(x))

    return f"[{show(low, '-inf')}, {show(high, 'inf')}]"


def harden_numbers(parser: argparse.ArgumentParser) -> None:
    """Wrap the numeric options of `parser` and of every subparser below it (see the module docstring)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                harden_numbers(sub)
            continue
        bounds = RANGES.get(action.dest, (None, None))
        kind: Any = action.type
        if kind is float:
            action.type = checked_float(bounds)
        elif kind is int:
            action.type = checked_int(bounds)
