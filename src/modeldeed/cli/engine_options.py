"""`--engine local|ray` and `--address ADDR`: where a command runs its independent tasks (`modeldeed.engine`)."""

from __future__ import annotations

import argparse

from ..engine import ENGINE_NAMES, Engine, open_engine
from ..errors import ModeldeedError


def add_engine_options(parser: argparse.ArgumentParser, what: str) -> None:
    g = parser.add_argument_group(
        "engine", f"where {what} run; results are the same on every engine (see docs/engines.md)"
    )
    g.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default="local",
        help=f"local: run {what} one after another in this process (default); ray: one Ray task each "
        "(pip install 'modeldeed[ray]')",
    )
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: local (start Ray in this process on 127.0.0.1, the default), auto (the cluster "
        "`ray start` runs on this machine), HOST:PORT (a cluster's head) or ray://HOST:PORT (a Ray client server)",
    )


def engine_from_args(args: argparse.Namespace) -> Engine:
    if args.engine != "ray" and args.address is not None:
        raise ModeldeedError("--address is for --engine ray")
    return open_engine(args.engine, args.address)
