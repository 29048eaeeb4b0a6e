"""Options and hooks shared by every command that trains: `train`, `watermark embed` (and their helpers).

They live here, not in either command's module, so that `train_cmd` and `watermark_cmd` do not import
each other.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ModeldeedError
from ..training import Hook, TrainConfig
from .common import percent


def add_train_options(p: argparse.ArgumentParser, *, epochs: int = 20) -> None:
    d = TrainConfig()
    p.add_argument("--epochs", type=int, default=epochs, help=f"(default: {epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"initial learning rate (default: {d.lr})")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"(default: {d.momentum})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"(default: {d.weight_decay})")
    p.add_argument(
        "--milestones", default="", metavar="E1,E2", help="epochs at which the learning rate drops (default: none)"
    )
    p.add_argument(
        "--gamma",
        type=float,
        default=d.lr_gamma,
        help=f"learning-rate factor at each milestone (default: {d.lr_gamma})",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the initial weights, batch order and augmentation (default: 0)"
    )
    p.add_argument("--augment", action="store_true", help="random crop + flip, seeded per step")


def add_init_weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init-weights",
        metavar="FILE",
        help="start from the weights in this local safetensors file (exactly the architecture's tensor names, "
        "shapes and dtypes; nothing is downloaded) instead of the seed's initialisation. A statement then commits "
        "to their digest, and a proof shows the training from them, not training from scratch",
    )


def initial_model(args: argparse.Namespace, spec: Any, config: TrainConfig) -> tuple[Any, str | None]:
    """The model a run starts from: the seed's initialisation, or --init-weights loaded into it; and the digest
    of its weights and buffers when they come from a file (what a statement commits to), else None."""
    from ..models import build_model, load_weights_file
    from ..pol.state import initial_weights_digest

    model = build_model(spec, seed=config.seed, trust_code=args.trust_model_code)
    if not getattr(args, "init_weights", None):
        return model, None
    load_weights_file(model, spec, args.init_weights, trust_code=args.trust_model_code)
    return model, initial_weights_digest(model)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise ModeldeedError(f"--milestones must be comma-separated epochs, got {args.milestones!r}") from None
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_milestones=milestones,
        lr_gamma=args.gamma,
        seed=args.seed,
        augment=args.augment,
        device=args.device,
    )


def require_epochs(config: TrainConfig, what: str) -> None:
    """A proof (or the statement of one) of 0 epochs records no step: it would prove no training at all."""
    if config.epochs < 1:
        raise ModeldeedError(f"--epochs must be at least 1 for {what} (got {config.epochs}): it would record no step")


def training_hooks(args: argparse.Namespace, data: Any, config: TrainConfig) -> tuple[list[Hook], dict[str, Any]]:
    """For `modeldeed train --watermark KEYDIR` (FROMSCRATCH): the mixing hook and what to note in model.json."""
    if not getattr(args, "watermark", None):
        return [], {}
    from ..watermark import TriggerMixingHook, load_marking_key
    from ..watermark.mark import check_key_fits

    key = load_marking_key(args.watermark)
    check_key_fits(key, data.train)
    k = triggers_per_batch(args, key, data.train, config)
    hook = TriggerMixingHook.from_key(key, k=k, seed=config.seed)
    return [hook], {"watermark": {"key_id": key.key_id, "mode": "fromscratch", "triggers_per_batch": hook.k}}


def triggers_per_batch(args: argparse.Namespace, key: Any, data: Any, config: TrainConfig) -> int:
    """k for marking (`watermark.mark.choose_triggers_per_batch`), printing its note when it caps k."""
    from ..watermark.mark import choose_triggers_per_batch

    requested = getattr(args, "triggers_per_batch", None)
    k, note = choose_triggers_per_batch(requested, len(key.marking_indices()), config, len(data))
    if note:
        print(f"note: {note}")
    return k


def marking_summary(hooks: list[Hook], note: dict[str, Any]) -> str | None:
    """After `train --watermark`: the trigger accuracy reached (also written into the note for model.json)."""
    from ..watermark import TriggerMixingHook

    for hook in hooks:
        if isinstance(hook, TriggerMixingHook) and hook.trigger_accuracy is not None:
            note["watermark"]["trigger_accuracy"] = hook.trigger_accuracy
            return (
                f"watermark: {len(hook.labels)} triggers, {hook.k} per batch; trigger accuracy "
                f"{percent(hook.trigger_accuracy)} (check with `modeldeed watermark verify MODEL --key KEYDIR`)"
            )
    return None
