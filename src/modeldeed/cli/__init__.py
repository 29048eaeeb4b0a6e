"""The `modeldeed` command: parses, calls the library, prints. Exit status 0 ok, 1 rejected, 2 bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import ModeldeedError
from . import attack_cmd, demo_cmd, dispute_cmd, experiment_cmd, pol_cmd, registry_cmd, train_cmd, watermark_cmd
from .numbers import OneLineParser, harden_numbers

COMMAND_GROUPS = (train_cmd, watermark_cmd, pol_cmd, attack_cmd, experiment_cmd, demo_cmd, registry_cmd, dispute_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="modeldeed",
        description="Prove who owns a neural network, and test how far such a proof can be trusted.",
    )
    parser.add_argument("--version", action="version", version=f"modeldeed {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    harden_numbers(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except ModeldeedError as exc:
        print(f"modeldeed: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a failing disk, a read-only or missing directory: the file and the reason
        if isinstance(exc, BrokenPipeError):
            sys.stderr.close()
            return 0
        print(f"modeldeed: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modeldeed: interrupted (no half-written files were left behind)", file=sys.stderr)
        return 130


def describe_os_error(exc: OSError) -> str:
    """`<file>: <reason>` for an OSError; the library names the file it was writing (files.write_error)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
        return one_line(f"{exc.filename}{target}: {reason}")
    return one_line(reason)


def one_line(text: str) -> str:
    """Errors are one line: a file name or a reason that holds a newline must not start a second one."""
    return " ".join(text.split("\n")) if "\n" in text else text


if __name__ == "__main__":
    sys.exit(main())
