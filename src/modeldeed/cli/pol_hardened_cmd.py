"""Hardened proof-of-learning verification on the command line: `pol verify --hardened` and `pol commit`.

`pol commit` writes the owner's training statement before training (every setting of the run, a Merkle root
over the exact training samples, a commitment to the seed and, with --watermark, the trigger samples) and
the opening the proof will carry; `train --proof DIR --statement STATEMENT` records under it (and refuses a
run whose settings differ); `pol verify --hardened [--statement STATEMENT]` checks it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModeldeedError
from .common import add_data_options, add_trust_option, load_data
from .registration_options import (
    print_registration,
    receipt_path_for,
    register_digest,
    register_with,
    registrar,
    registry_options,
)

if TYPE_CHECKING:
    from ..data import Dataset
    from ..models import ModelSpec
    from ..pol.policy import Hardening
    from ..pol.statement import CarriedStatement, TriggerSet
    from ..training import Hook, TrainConfig

HARDENED_SWITCHES = (
    "settings",
    "initialisation_seed",
    "batch_order",
    "dataset_membership",
    "frozen_tensors",
    "update_profile",
)


def add_hardened_options(parser: argparse.ArgumentParser) -> None:
    """The hardened switches of `pol verify` (see modeldeed.pol.hardened)."""
    from ..pol.challenge import DEFAULT_MIN_FABRICATED, DEFAULT_SOUNDNESS_BITS

    g = parser.add_argument_group(
        "hardened verification",
        "checks that stop adaptive spoofs (see docs/pol-spoofing.md); each is reported on its own",
    )
    g.add_argument(
        "--hardened",
        action="store_true",
        help="also require: the settings of the training statement, W_0 and its whole state from the seed, batches "
        "from the seeded order, only committed samples, untrained tensors unchanged, and a replay of the intervals "
        "a challenge draws from the proof's commitment",
    )
    g.add_argument(
        "--statement",
        metavar="STATEMENT",
        help="trust the owner's training statement (`pol commit`'s directory or its statement.json); implies "
        "--hardened (default: the proof's own statement, not bound in time)",
    )
    g.add_argument(
        "--commitment",
        metavar="FILE",
        help="the proof commitment the prover published (`pol commit-proof`): the proof must match it",
    )
    g.add_argument(
        "--commitment-receipt",
        metavar="FILE",
        help="the registry receipt of the proof's commitment: checked offline (--log-key) against the commitment "
        "recomputed from the proof; the challenge then draws on the log's beacon (one draw per registration)",
    )
    g.add_argument(
        "--statement-receipt",
        metavar="FILE",
        help="the registry receipt of the training statement: it must register the statement in force, before the "
        "commitment",
    )
    g.add_argument("--log-key", metavar="PUB", help="the transparency log's public key file (for the receipts)")
    g.add_argument(
        "--soundness-bits",
        type=float,
        default=DEFAULT_SOUNDNESS_BITS,
        metavar="B",
        help=f"challenge enough intervals that a proof with --min-fabricated of its intervals fabricated passes "
        f"with probability at most 2^-B (default: {DEFAULT_SOUNDNESS_BITS:g})",
    )
    g.add_argument(
        "--min-fabricated",
        type=float,
        default=DEFAULT_MIN_FABRICATED,
        metavar="F",
        help=f"the fabricated fraction the soundness level is stated for (default: {DEFAULT_MIN_FABRICATED:g})",
    )
    g.add_argument(
        "--top-q",
        type=int,
        default=2,
        metavar="Q",
        help="also replay the Q intervals of a full proof whose update is largest against their epoch's median "
        "(l2): an addition that catches a lone jump, not counted towards soundness (default: 2; 0: none)",
    )
    g.add_argument(
        "--skip-hardened",
        action="append",
        default=[],
        choices=HARDENED_SWITCHES,
        help="switch one hardened check off (repeatable)",
    )


def hardening_from_args(args: argparse.Namespace) -> Hardening | None:
    """The `Hardening` the options ask for, or None without --hardened/--statement."""
    from ..pol.commitment import load_commitment
    from ..pol.policy import Hardening
    from ..pol.statement import load_statement

    if not (getattr(args, "hardened", False) or getattr(args, "statement", None)):
        return None
    switches = {name: name not in args.skip_hardened for name in HARDENED_SWITCHES}
    return Hardening(
        statement=load_statement(args.statement) if args.statement else None,
        receipts=receipts_from_args(args.commitment_receipt, args.statement_receipt, args.log_key),
        soundness_bits=args.soundness_bits,
        min_fabricated=args.min_fabricated,
        commitment=load_commitment(args.commitment) if args.commitment else None,
        top_q=args.top_q,
        **switches,
    )


def receipts_from_args(commitment: str | None, statement: str | None, log_key: str | None):  # type: ignore[no-untyped-def]
    """`pol.registration.Receipts` from receipt files and the log's key (None without receipts)."""
    if commitment is None and statement is None:
        return None  # `pol verify` itself refuses a --log-key that has nothing to check
    if not log_key:
        raise ModeldeedError("receipts are checked offline with the log's public key: pass --log-key PUB")
    from ..pol.registration import Receipts
    from ..registry import load_log_key, load_receipt

    return Receipts(
        load_log_key(log_key),
        load_receipt(commitment) if commitment else None,
        load_receipt(statement) if statement else None,
    )


def register_commit(sub: argparse._SubParsersAction) -> None:
    """Add `pol commit` to the `pol` group."""
    from ..models import MODEL_NAMES
    from .training_options import add_init_weights_option, add_train_options

    c = sub.add_parser(
        "commit",
        help="before training: commit to every setting of the run, the exact training samples and the seed",
        description="Write the owner's training statement (OUT/statement.json: the architecture, the "
        "initialisation, every hyper-parameter, k, the dataset's Merkle root, a commitment to the seed, "
        "optionally the trained parameters and, with --watermark, the trigger samples; publish or register it "
        "before training) and its opening (OUT/opening.json: keep it; `train --proof DIR --statement OUT` puts "
        "both into the proof). `pol verify --hardened --statement OUT` then accepts only proofs made with exactly "
        "these settings. Refuses to overwrite an existing statement without --force.",
    )
    add_data_options(c)
    c.add_argument("--model", default="cnn", help=f"{', '.join(MODEL_NAMES)} or package.module:factory (default: cnn)")
    c.add_argument("--model-args", metavar="JSON", help="extra keyword arguments for the model factory")
    add_trust_option(c)
    add_train_options(c)
    add_init_weights_option(c)
    c.add_argument("--device", default="cpu", help="the device training will run on (default: cpu)")
    c.add_argument(
        "--checkpoint-every", type=int, default=100, metavar="K", help="proof checkpoint every K steps (default: 100)"
    )
    c.add_argument(
        "--trained-parameters",
        metavar="P1,P2",
        help="train only these parameters (default: all of them; a proof may then train no other set)",
    )
    c.add_argument("--watermark", metavar="KEYDIR", help="also commit to the trigger samples of this marking key")
    c.add_argument("--out", required=True, metavar="DIR", help="where to write statement.json and opening.json")
    c.add_argument("--force", action="store_true", help="overwrite an existing statement (breaks proofs made with it)")
    registry_options(c, "the training statement (before training starts)", "statement.receipt.json in --out")
    c.set_defaults(handler=run_commit)


def run_commit(args: argparse.Namespace) -> int:
    from ..models import spec_for_data
    from ..pol.statement import OPENING_FILE, STATEMENT_FILE, make_statement, save_opening, save_statement
    from .training_options import config_from_args, initial_model, require_epochs

    if not 0 <= args.seed < 2**64:
        raise ModeldeedError(f"--seed must lie in [0, 2**64), got {args.seed}")
    if args.checkpoint_every < 1:
        raise ModeldeedError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    out = Path(args.out)
    registry = registrar(args)  # loaded (and checked) before anything is made
    if (out / STATEMENT_FILE).exists() and not args.force:
        raise ModeldeedError(
            f"{out / STATEMENT_FILE}: already exists; a statement is made once, before training (overwriting it "
            "breaks the proofs made with it). Pass --force to replace it anyway"
        )
    config = config_from_args(args)
    require_epochs(config, "a training statement")
    data = load_data(args)
    spec = spec_for_data(
        args.model, data.train.input_shape, data.train.num_classes, args.model_args, trust_code=args.trust_model_code
    )
    model, initial_weights = initial_model(args, spec, config)
    names = [n for n, _ in model.named_parameters()]
    trained = None
    if args.trained_parameters:
        trained = [p.strip() for p in args.trained_parameters.split(",") if p.strip()]
        unknown = [p for p in trained if p not in names]
        if unknown:
            raise ModeldeedError(f"--trained-parameters: the model has no parameter {unknown[0]!r}")
    triggers = trigger_set(args.watermark) if args.watermark else None
    statement, opening = make_statement(
        data.train,
        config,
        spec,
        checkpoint_every=args.checkpoint_every,
        trained_parameters=trained,
        triggers=triggers,
        initial_weights=initial_weights,
    )
    save_statement(out / STATEMENT_FILE, statement, force=args.force)
    try:
        save_opening(out / OPENING_FILE, opening, force=args.force)
    except OSError:  # a statement without its opening is useless: remove it so the same command can be rerun
        (out / STATEMENT_FILE).unlink(missing_ok=True)
        raise
    with_triggers = f", with {triggers.y.numel()} triggers" if triggers else ""
    if initial_weights:
        with_triggers += f", from initial weights {initial_weights[:16]}..."
    print(
        f"statement {statement.id} for {spec.architecture} on {data.name} ({statement.dataset.size} samples, Merkle "
        f"root {statement.dataset.merkle_root[:16]}...{with_triggers}) written to {out / STATEMENT_FILE}; keep "
        f"{out / OPENING_FILE} until you publish the proof"
    )
    if registry is None:
        return 0
    from ..pol.registration import STATEMENT_KIND, statement_id

    how = f"modeldeed registry publish {out / STATEMENT_FILE} --registry {args.registry} --identity {args.identity}"
    registration = register_with(
        registry,
        register_digest(STATEMENT_KIND, statement_id(statement)),
        receipt_path_for(out / STATEMENT_FILE),
        "the training statement",
        how,
    )
    return print_registration(registration, "the training statement")


def trigger_set(keydir: str) -> TriggerSet:
    """The trigger samples `train --watermark KEYDIR` appends, in the order the marking hook holds them."""
    from ..pol.statement import TriggerSet
    from ..watermark import TriggerMixingHook, load_marking_key

    key = load_marking_key(keydir)
    hook = TriggerMixingHook.from_key(key)
    return TriggerSet(hook.images.cpu(), hook.labels.cpu(), (key.key_id,))


def statement_for_training(
    path: str,
    config: TrainConfig,
    spec: ModelSpec,
    data: Dataset,
    k: int,
    hooks: list[Hook],
    trust_code: bool,
    initial_weights: str | None = None,
) -> tuple[CarriedStatement, TriggerSet | None, Any]:
    """The statement + opening of `pol commit`, checked against the run about to start (every setting, and the
    digest of --init-weights when the run starts from a file)."""
    from ..models import build_model
    from ..pol.hardened import settings_problems
    from ..pol.proof import DatasetInfo, ProofHeader
    from ..pol.recorder import environment
    from ..pol.statement import CarriedStatement, TriggerSet, dataset_root, load_opening, load_statement
    from ..watermark import TriggerMixingHook

    statement = load_statement(path)
    opening = load_opening(path)
    if not statement.opens(opening):
        raise ModeldeedError(f"{path}: the opening does not open the statement's seed commitment")
    model = build_model(spec, seed=config.seed, trust_code=trust_code)
    names = [n for n, _ in model.named_parameters()]
    trained = tuple(n for n in names if statement.trained_parameters is None or n in statement.trained_parameters)
    header = ProofHeader(
        spec=spec,
        config=config,
        trained_parameters=trained,
        dataset=DatasetInfo(data.name, data.fingerprint, len(data), data.input_shape, data.num_classes),
        initialisation={"scheme": statement.initialisation.scheme, "seed": config.seed},
        environment=environment(config, model),
        checkpoint_every=k,
        keyframe_every=1,
    )
    problems = settings_problems(statement, opening, header, names)
    if statement.dataset.merkle_root != dataset_root(data):
        problems.append(f"the statement commits to other samples than {data.name}'s training split")
    mixing = [h for h in hooks if isinstance(h, TriggerMixingHook)]
    triggers = None
    if mixing:
        import torch

        key_ids = tuple(statement.triggers.key_ids) if statement.triggers else ()
        images = torch.cat([h.images.cpu() for h in mixing])
        triggers = TriggerSet(images, torch.cat([h.labels.cpu() for h in mixing]), key_ids)
        if statement.triggers is None or triggers.root() != statement.triggers.merkle_root:
            problems.append(
                "the statement does not commit to these trigger samples (make it with `pol commit --watermark`)"
            )
    elif statement.triggers is not None:
        problems.append("the statement commits to trigger samples; train with --watermark KEYDIR")
    committed = statement.initialisation.weights
    if committed != initial_weights:
        problems.append(
            f"the statement commits to initial weights {committed[:16]}..., the run starts from "
            + (f"weights {initial_weights[:16]}..." if initial_weights else "the seed's (pass --init-weights)")
            if committed
            else "the run starts from --init-weights, but the statement commits to W_0 from the seed (make it "
            "with `pol commit --init-weights`)"
        )
    if problems:
        raise ModeldeedError(f"{path}: this run is not the one the statement commits to: " + "; ".join(problems))
    return CarriedStatement(statement=statement, opening=opening), triggers, list(trained)
