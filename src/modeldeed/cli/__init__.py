"""The `modeldeed` command: parses, calls the library, prints. Exit status 0 ok, 1 rejected, 2 bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ModeldeedError
from . import attack_cmd, demo_cmd, dispute_cmd, experiment_cmd, pol_cmd, registry_cmd, train_cmd, watermark_cmd

COMMAND_GROUPS = (train_cmd, watermark_cmd, pol_cmd, attack_cmd, experiment_cmd, demo_cmd, registry_cmd, dispute_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeed",
        description="Prove who owns a neural network, and test how far such a proof can be trusted.",
    )
    parser.add_argument("--version", action="version", version=f"modeldeed {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except ModeldeedError as exc:
        print(f"modeldeed: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("modeldeed: interrupted (no half-written files were left behind)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
