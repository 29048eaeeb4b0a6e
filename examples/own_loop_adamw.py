"""A plain PyTorch training loop with its own AdamW, a cosine schedule and a DataLoader with workers over files,
recording a proof of learning and embedding a watermark on the way.

    python examples/own_loop_adamw.py --out runs/own            # digits, written as a memory-mapped dataset
    PYTHONPATH=examples modeldeed pol verify runs/own/proof --data memmap:runs/own/data --hardened \
        --statement runs/own/statement --trust-model-code
    modeldeed watermark verify runs/own/model --key runs/own/keys --data memmap:runs/own/data

What is the user's and what is modeldeed's: the model factory, the optimizer, the loader, the loop and the step
function `train_step` below are the user's; modeldeed's `PolRecorder` runs each step through `train_step` (the
function the verifier imports, with --trust-model-code, to replay it) and steps the schedule; `TriggerMixer`
appends the watermark's triggers to each batch. See docs/own-loop.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modeldeed.data import DataSplits, load_dataset
from modeldeed.data.memmap import ArraySamples, save_memmap
from modeldeed.models import ModelInfo, build_model, save_model, spec_for_data
from modeldeed.pol.loop import SchedulerDoc
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.pol.statement import (
    CarriedStatement,
    TriggerSet,
    make_statement,
    save_opening,
    save_statement,
)
from modeldeed.training import accuracy
from modeldeed.watermark import keygen, save_key_pair
from modeldeed.watermark.mix import TriggerMixer


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    accumulation: int,
    clip_norm: float | None,
) -> torch.Tensor:
    """The user's step: label-smoothed cross-entropy, gradients accumulated over micro-batches, clipped."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros(())
    for x, y in zip(inputs.tensor_split(accumulation), labels.tensor_split(accumulation)):
        loss = F.cross_entropy(model(x), y, label_smoothing=0.05) / accumulation
        loss.backward()
        total += loss.detach().cpu()
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for data, keys, statement, proof, model")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--every", type=int, default=20, help="checkpoint interval k (steps)")
    parser.add_argument("--triggers", type=int, default=20, help="watermark trigger images")
    parser.add_argument("--triggers-per-batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--train-size", type=int, help="use only the first N training images (tiny runs, tests)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out: Path = args.out

    # The data, as files read per batch: digits written once as memory-mapped .npy arrays.
    data_dir = out / "data"
    if not (data_dir / "train_images.npy").exists():
        digits = load_dataset("digits")
        if args.train_size:
            digits = DataSplits(digits.train.subset(range(args.train_size)), digits.test)
        save_memmap(data_dir, digits)
    splits = load_dataset(f"memmap:{data_dir}")
    train = splits.train

    # The watermark key (publish keys/verification_key.json before marking).
    marking_key, verification_key = keygen(train.classes, train.input_shape, size=args.triggers)
    save_key_pair(out / "keys", marking_key, verification_key, pngs=False)
    mixer = TriggerMixer.from_key(marking_key, k=args.triggers_per_batch, seed=args.seed)

    # The user's model and optimizer; the model is built from its seed, so a verifier can re-derive W_0.
    spec = spec_for_data("cnn", train.input_shape, train.num_classes)
    model = build_model(spec, seed=args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=1e-2)
    steps = -(-len(train) // args.batch_size) * args.epochs
    config, loop = own_loop_settings(
        optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        scheduler=SchedulerDoc(kind="cosine", arguments={"T_max": steps, "eta_min": 1e-4}),
        step="own_loop_adamw:train_step",
        accumulation=2,
        clip_norm=5.0,
    )

    # The statement, made (and registered) before training: it binds every setting above and the triggers.
    triggers = TriggerSet(mixer.images.cpu(), mixer.labels.cpu(), mixer.key_ids)
    statement, opening = make_statement(train, config, spec, checkpoint_every=args.every, triggers=triggers, loop=loop)
    (out / "statement").mkdir(parents=True, exist_ok=True)
    save_statement(out / "statement", statement, force=True)
    save_opening(out / "statement", opening, force=True)

    samples = ArraySamples(data_dir, "train")
    carried = CarriedStatement(statement=statement, opening=opening)
    with PolRecorder(
        out / "proof",
        model,
        optimizer,
        data=train,
        spec=spec,
        config=config,
        loop=loop,
        statement=carried,
        committed=triggers,
        every=args.every,
    ) as rec:
        for epoch in range(args.epochs):
            workers = {"num_workers": args.workers, "persistent_workers": False} if args.workers else {}
            for indices, x, y in rec.loader(samples, epoch, **workers):
                x, y = mixer.mix(rec.step_index, x, y)
                rec.step(x, y, indices)

    info = ModelInfo(spec, train.classes, train.input_shape, {"proof_id": rec.proof_id})
    save_model(out / "model", model, info)
    print(f"proof {rec.proof_id} in {out / 'proof'}; test accuracy {accuracy(model, splits.test):.3f}")
    print(
        f"verify: PYTHONPATH={Path(__file__).parent} modeldeed pol verify {out / 'proof'} --data memmap:{data_dir} "
        f"--hardened --statement {out / 'statement'} --trust-model-code"
    )
    print(f"        modeldeed watermark verify {out / 'model'} --key {out / 'keys'} --data memmap:{data_dir}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # so that `own_loop_adamw:train_step` resolves when run as a script
    sys.exit(main())
