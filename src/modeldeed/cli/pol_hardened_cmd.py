"""Hardened proof-of-learning verification on the command line: `pol verify --hardened` and `pol commit`.

`pol commit` writes the owner's training statement before training (a Merkle root over the exact training
samples and a commitment to the seed) and the opening that the proof will carry; `train --proof DIR
--statement STATEMENT_DIR` records it into the proof; `pol verify --hardened [--statement FILE]` checks it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import ModeldeedError
from .common import add_data_options, load_data

if TYPE_CHECKING:
    from ..data import Dataset
    from ..pol.commitment import CarriedStatement
    from ..pol.hardened import Hardening

STATEMENT_FILE = "statement.json"
OPENING_FILE = "opening.json"


def add_hardened_options(parser: argparse.ArgumentParser) -> None:
    """The hardened switches of `pol verify` (see modeldeed.pol.hardened)."""
    from ..pol.hardened import HARDENED_CHECKS

    g = parser.add_argument_group(
        "hardened verification",
        "checks that stop the spoofs of `modeldeed attack pol-spoof` (see docs/pol-spoofing.md); each is reported "
        "on its own",
    )
    g.add_argument(
        "--hardened",
        action="store_true",
        help="also require: replayed samples in the trusted dataset (Merkle proofs), W_0 and batch order from the "
        "seed, Fiat-Shamir intervals replayed, replays reproducing each update, no interpolated update profile",
    )
    g.add_argument(
        "--statement",
        metavar="FILE",
        help="trust the owner's training statement (statement.json of `pol commit`): its Merkle root and seed "
        "commitment; implies --hardened (default: trust the public dataset itself)",
    )
    g.add_argument(
        "--random-intervals",
        type=int,
        default=2,
        metavar="N",
        help="intervals per epoch drawn by Fiat-Shamir from the proof id and replayed (default: 2)",
    )
    g.add_argument(
        "--max-relative-error",
        type=float,
        default=0.1,
        metavar="R",
        help="largest d(replay, W_t+k) / d(W_t, W_t+k) accepted (default: 0.1)",
    )
    g.add_argument(
        "--skip-hardened",
        action="append",
        default=[],
        choices=(*HARDENED_CHECKS, "batch_order"),
        help="switch one hardened check off (repeatable)",
    )


def hardening_from_args(args: argparse.Namespace) -> Hardening | None:
    """The `Hardening` the options ask for, or None without --hardened/--statement."""
    from ..pol.commitment import load_statement
    from ..pol.hardened import HARDENED_CHECKS, Hardening

    if not (getattr(args, "hardened", False) or getattr(args, "statement", None)):
        return None
    switches = {name: name not in args.skip_hardened for name in (*HARDENED_CHECKS, "batch_order")}
    return Hardening(
        statement=load_statement(args.statement) if args.statement else None,
        random_per_epoch=args.random_intervals,
        max_relative_error=args.max_relative_error,
        **switches,
    )


def register_commit(sub: argparse._SubParsersAction) -> None:
    """Add `pol commit` to the `pol` group."""
    c = sub.add_parser(
        "commit",
        help="before training: commit to the exact training samples (Merkle root) and to the seed",
        description="Write the owner's training statement (OUT/statement.json: a Merkle root over the exact "
        "training samples and a commitment to the seed; publish it before training) and its opening "
        "(OUT/opening.json: keep it; `train --proof DIR --statement OUT` puts both into the proof). "
        "`pol verify --hardened --statement OUT/statement.json` then accepts only proofs whose replayed "
        "samples are among the committed ones and whose W_0 and batch order follow from the seed.",
    )
    add_data_options(c)
    c.add_argument("--seed", type=int, default=0, help="the training seed to commit to (default: 0)")
    c.add_argument("--out", required=True, metavar="DIR", help="where to write statement.json and opening.json")
    c.set_defaults(handler=run_commit)


def run_commit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..pol.commitment import make_statement, save_opening, save_statement

    if not 0 <= args.seed < 2**64:
        raise ModeldeedError(f"--seed must lie in [0, 2**64), got {args.seed}")
    data = load_data(args)
    statement, opening = make_statement(data.train, args.seed)
    out = Path(args.out)
    save_statement(out / STATEMENT_FILE, statement)
    save_opening(out / OPENING_FILE, opening)
    print(
        f"statement {statement.id} for {data.name} ({statement.samples} samples, Merkle root "
        f"{statement.merkle_root[:16]}...) written to {out / STATEMENT_FILE}; keep {out / OPENING_FILE} "
        "until you publish the proof"
    )
    return 0


def load_carried_statement(directory: str, seed: int, data: Dataset) -> CarriedStatement:
    """The statement + opening of a `pol commit` directory, checked against the training run about to start."""
    from pathlib import Path

    from ..pol.commitment import CarriedStatement, dataset_root, load_opening, load_statement

    folder = Path(directory)
    statement = load_statement(folder / STATEMENT_FILE)
    opening = load_opening(folder / OPENING_FILE)
    if not statement.opens(opening):
        raise ModeldeedError(f"{folder}: {OPENING_FILE} does not open {STATEMENT_FILE}'s seed commitment")
    if opening.seed != seed:
        raise ModeldeedError(f"{folder}: the statement commits to seed {opening.seed}, but training uses --seed {seed}")
    if statement.merkle_root != dataset_root(data):
        raise ModeldeedError(f"{folder}: the statement commits to other samples than {data.name}'s training split")
    return CarriedStatement(statement, opening)
