"""`modeldeed train` and `modeldeed evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data import DataSplits
from ..errors import ModeldeedError
from ..models import MODEL_NAMES, ModelInfo, ModelSpec, load_model, save_model, spec_for_data
from ..training import TrainConfig, accuracy, train
from .common import (
    add_data_options,
    add_runtime_options,
    add_trust_option,
    apply_runtime,
    check_compatible,
    load_data,
    percent,
    print_json,
)
from .training_options import (
    add_init_weights_option,
    add_train_options,
    config_from_args,
    initial_model,
    marking_summary,
    require_epochs,
    training_hooks,
)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train a model (optionally watermarked / recording a proof)",
        description="Train a model with the one training loop and save it as a model directory.",
    )
    add_data_options(p)
    p.add_argument(
        "--model",
        default="cnn",
        help=f"{', '.join(MODEL_NAMES)}, timm:NAME (optional extra, untrained) or package.module:factory "
        "(default: cnn)",
    )
    p.add_argument(
        "--model-args", metavar="JSON", help="extra keyword arguments for the model factory, as a JSON object"
    )
    add_trust_option(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where to write model.safetensors and model.json")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    add_train_options(p)
    add_init_weights_option(p)
    add_runtime_options(p)
    p.add_argument(
        "--proof", metavar="DIR", help="record a proof of learning into DIR while training (see `modeldeed pol`)"
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=100, metavar="K", help="proof checkpoint every K steps (default: 100)"
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted --proof recording in DIR")
    p.add_argument(
        "--statement",
        metavar="STATEMENT",
        help="record under the training statement of `modeldeed pol commit --out DIR` (its directory or "
        "statement.json): the run must have exactly its settings, and the proof carries it and the seed opening",
    )
    p.add_argument(
        "--register-every",
        type=int,
        metavar="N",
        help="with --proof and --registry: every N checkpoints, register the next link of a hash chain over the "
        "checkpoints (kind pol-progress; receipts in DIR/progress/): proves when each part of the training existed. "
        "An unreachable registry costs a warning, not the training",
    )
    p.add_argument("--registry", metavar="URL", help="the transparency log for --register-every")
    p.add_argument("--identity", metavar="ID", help="your submitter identity (`registry keygen`) for --register-every")
    p.add_argument("--log-key", metavar="PUB", help="check each progress receipt against the log's public key")
    p.add_argument(
        "--watermark", metavar="KEYDIR", help="FROMSCRATCH: train with the trigger set of a `watermark keygen` key"
    )
    p.add_argument(
        "--triggers-per-batch",
        type=int,
        metavar="K",
        help="with --watermark: triggers per batch (default: the paper's 2, or enough to show each trigger "
        "about 60 times on small data)",
    )
    p.set_defaults(handler=run_train)

    e = commands.add_parser(
        "evaluate",
        help="test accuracy of a saved model",
        description="Evaluate a saved model on the test split of a dataset.",
    )
    e.add_argument("model_dir", metavar="MODEL", help="a model directory written by `modeldeed train`")
    add_data_options(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    add_trust_option(e)
    e.set_defaults(handler=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    apply_runtime(args)
    existing = [n for n in ("model.safetensors", "model.json") if (Path(args.out) / n).exists()]
    if existing and not args.force:
        raise ModeldeedError(f"{args.out}: already holds a model ({', '.join(existing)}); pass --force to replace it")
    config = config_from_args(args)
    if args.proof:
        require_epochs(config, "a proof of learning (--proof)")
    data = load_data(args)
    spec = spec_for_data(
        args.model, data.train.input_shape, data.train.num_classes, args.model_args, trust_code=args.trust_model_code
    )
    model, initial_weights = initial_model(args, spec, config)
    proof_id = None
    hooks, watermark_note = training_hooks(args, data, config)
    if args.proof and args.resume and proof_is_complete(args.proof):
        return finish_from_proof(args, data, config, watermark_note)
    if args.proof:
        from ..pol import record_training
        from .pol_hardened_cmd import statement_for_training

        statement, committed, parameters = None, None, None
        if args.statement:
            statement, committed, trained = statement_for_training(
                args.statement,
                config,
                spec,
                data.train,
                args.checkpoint_every,
                hooks,
                args.trust_model_code,
                initial_weights,
            )
            named = dict(model.named_parameters())
            parameters = [named[n] for n in trained]
        chain = progress_registrar(args, statement.statement.id if statement is not None else None)
        recording = record_training(
            model,
            data.train,
            config,
            args.proof,
            spec=spec,
            checkpoint_every=args.checkpoint_every,
            init_seed=config.seed,
            resume=args.resume,
            hooks=[*hooks, chain] if chain is not None else hooks,
            parameters=parameters,
            progress=not args.no_progress,
            statement=statement,
            committed=committed,
        )
        result, proof_id = recording.result, recording.proof_id
        if chain is not None:
            links = len(chain.document.links)
            print(f"progress: {links - len(chain.missed)} of {links} chain links registered (receipts in "
                  f"{Path(args.proof) / 'progress'})")  # fmt: skip
            if chain.missed:
                print(f"warning: links {chain.missed[:10]} were NOT registered (the registry was unreachable)")
    elif args.register_every or args.registry:
        raise ModeldeedError("--register-every and --registry register a proof's progress; pass --proof DIR")
    elif args.resume:
        raise ModeldeedError("--resume continues a --proof recording; pass --proof DIR")
    elif args.statement:
        raise ModeldeedError("--statement is recorded into a proof; pass --proof DIR")
    else:
        result = train(model, data.train, config, hooks=hooks, progress=not args.no_progress)
    test_acc = accuracy(model, data.test)
    marking_line = marking_summary(hooks, watermark_note)
    save_model(Path(args.out), model.cpu(), trained_model_info(spec, data, config, test_acc, proof_id, watermark_note))
    print(
        f"trained {args.model} on {data.name}: {result.steps} steps in {result.seconds:.1f} s, "
        f"test accuracy {percent(test_acc)}; saved to {args.out}"
    )
    if marking_line:
        print(marking_line)
    if proof_id:
        print(f"proof of learning {proof_id} written to {args.proof}")
    return 0


def trained_model_info(
    spec: ModelSpec,
    data: DataSplits,
    config: TrainConfig,
    test_acc: float,
    proof_id: str | None,
    watermark_note: dict[str, Any],
) -> ModelInfo:
    """What `train` writes into model.json (also when the model is rebuilt from a complete proof)."""
    return ModelInfo(
        spec,
        data.train.classes,
        data.train.input_shape,
        extra={
            "training": config.to_json(),
            "dataset": data.name,
            "dataset_fingerprint": data.train.fingerprint,
            "test_accuracy": test_acc,
            **({"proof_id": proof_id} if proof_id else {}),
            **watermark_note,
        },
    )


def proof_is_complete(directory: str) -> bool:
    from ..pol.proof import PROOF_FILE

    return (Path(directory) / PROOF_FILE).is_file()


def finish_from_proof(
    args: argparse.Namespace, data: DataSplits, config: TrainConfig, watermark_note: dict[str, Any]
) -> int:
    """`train --resume` after the proof was completed but before the model was saved: the model is the proof's
    last checkpoint (`pol.extract`), saved as training would have saved it, once the proof's settings and
    data are the ones of this command."""
    from ..pol.extract import model_from_proof

    extracted = model_from_proof(args.proof, trust_code=args.trust_model_code)
    header = extracted.proof.header
    spec = spec_for_data(
        args.model, data.train.input_shape, data.train.num_classes, args.model_args, trust_code=args.trust_model_code
    )
    if header.config != config or header.spec != spec or header.dataset.fingerprint != data.train.fingerprint:
        raise ModeldeedError(
            f"{args.proof}: the complete proof was recorded with other settings, model or data than this command's; "
            "rebuild its model with `modeldeed pol extract-model`"
        )
    model = extracted.model
    test_acc = accuracy(model, data.test)
    info = trained_model_info(spec, data, config, test_acc, extracted.proof_id, watermark_note)
    save_model(Path(args.out), model.cpu(), info)
    print(
        f"the proof was already complete: model of its last step ({extracted.proof.total_steps} steps) rebuilt, "
        f"test accuracy {percent(test_acc)}; saved to {args.out}"
    )
    print(f"proof of learning {extracted.proof_id} written to {args.proof}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code)
    data = load_data(args)
    check_compatible(info, data, args.model_dir)
    acc = accuracy(model, data.test)
    if args.json:
        print_json({"model": args.model_dir, "dataset": data.name, "samples": len(data.test), "accuracy": acc})
    else:
        print(f"{args.model_dir} on {data.name} ({len(data.test)} test images): accuracy {percent(acc)}")
    return 0


def progress_registrar(args: argparse.Namespace, statement_id: str | None):  # type: ignore[no-untyped-def]
    """The `pol.progress.ProgressRegistrar` that --register-every N --registry URL --identity ID asks for, or None."""
    if args.register_every is None and not args.registry:
        if args.identity or args.log_key:
            raise ModeldeedError("--identity and --log-key belong to --register-every N --registry URL")
        return None
    if args.register_every is None or not args.registry or not args.identity:
        raise ModeldeedError("progress registration needs --register-every N, --registry URL and --identity ID")
    if args.register_every < 1:
        raise ModeldeedError(f"--register-every must be >= 1, got {args.register_every}")
    if args.resume:
        raise ModeldeedError("--register-every cannot continue an interrupted recording (the chain starts at step 0)")
    from ..pol.progress import ProgressRegistrar
    from ..registry import RegistryClient, load_identity, load_log_key

    return ProgressRegistrar(
        args.proof,
        RegistryClient(args.registry, retries=1, timeout=10.0),
        load_identity(args.identity),
        checkpoint_every=args.checkpoint_every,
        every=args.register_every,
        statement_id=statement_id,
        log_key=load_log_key(args.log_key) if args.log_key else None,
    )
