"""`modeldeed attack ...`: run removal attacks on a watermarked model and judge them with the real verifier.

Exit status: 0 the watermark survived (not removed by the success rule), 1 an attack removed it, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..attacks import (
    FINE_TUNE_MODES,
    PIRACY_FINE_TUNING,
    Attack,
    AttackResult,
    Distillation,
    FinePruning,
    GaussianNoise,
    InputPreprocessing,
    MagnitudePruning,
    OwnershipPiracy,
    PreprocessedModel,
    SuiteEntry,
    TransferLearning,
    WeightQuantization,
    default_suite,
    fine_tune_attack,
    from_scratch_settings,
    load_key_pair,
    paper_settings,
    pirate_key,
    run_suite,
    select,
    training_config,
    transferred_spec,
    watermark_verifier,
    with_head,
)
from ..data import DataSplits, load_dataset
from ..files import write_json_atomic
from ..models import MODEL_NAMES, ModelInfo, ModelSpec, last_linear, load_model, save_model, spec_for_data
from ..training import TrainConfig
from . import pol_spoof_cmd
from .common import (
    add_data_options,
    add_runtime_options,
    add_trust_option,
    apply_runtime,
    check_compatible,
    load_data,
    print_json,
)
from .engine_options import add_engine_options, engine_from_args

log = logging.getLogger(__name__)

RESULT_FILE = "attack.json"
SUITE_FILE = "results.json"
ORIGINAL_HEAD_DIR = "original-head"
PIRATE_KEY_DIR = "pirate-key"
CLI_TRAINING = TrainConfig(epochs=20)  # what `modeldeed train` uses when model.json does not say
LONG_RUN_SECONDS = 180  # above this, a command says how long it will take before it starts


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "attack",
        help="attack a watermarked model (fine-tuning, piracy, transfer, pruning, ...) and judge it",
        description="Run removal attacks on a watermarked model. Each attack saves the attacked model to --out "
        "(verifiable with `modeldeed watermark verify`) and its result to OUT/attack.json. The verdict "
        "always comes from the real verifier with the owner's key; an attack removes the watermark iff "
        "the verifier rejects and test accuracy dropped by less than 5 points. Exit status: 0 watermark "
        "not removed, 1 removed, 2 bad input. `pol-spoof` instead forges a proof of learning for the model "
        "(exit status 1 when the verifier accepts the forged proof).",
    )
    sub = group.add_subparsers(dest="attack", metavar="ATTACK", required=True)

    p = _attack_parser(sub, "finetune", "FTLL / FTAL / RTLL / RTAL (Adi et al. 2018, §5.4)", tuning=True)
    p.add_argument("--mode", required=True, choices=sorted(FINE_TUNE_MODES), help="which fine-tuning")
    p.set_defaults(make=lambda a, s: fine_tune_attack(a.mode, **s))

    p = _attack_parser(sub, "piracy", "embed a pirate's trigger set (PRETRAINED), then FTAL/RTAL (§5.5)", tuning=True)
    p.add_argument("--finetune", default="ftal", choices=PIRACY_FINE_TUNING, help="after embedding (default: ftal)")
    p.add_argument("--trigger-size", type=int, default=100, help="the pirate's trigger set size (default: 100)")
    p.add_argument("--embed-epochs", type=int, help="embedding epochs (default: the owner's training epochs)")
    p.set_defaults(make=_make_piracy)

    p = _attack_parser(sub, "transfer", "transfer to another dataset with a new head (§5.5)", tuning=True)
    p.add_argument("--target", required=True, metavar="NAME", help="the target dataset (resized to fit the model)")
    p.add_argument("--target-dir", metavar="DIR", help="folder with the target dataset's files")
    p.add_argument("--last-layer-only", action="store_true", help="train only the new head (default: all layers)")
    p.set_defaults(make=lambda a, s: TransferLearning(last_layer_only=a.last_layer_only, **s))

    p = _attack_parser(sub, "prune", "magnitude weight pruning to a sparsity", tuning=True, epochs=0)
    p.add_argument("--sparsity", type=float, default=0.5, help="share of weights set to zero (default: 0.5)")
    p.add_argument("--scope", choices=("layer", "global"), default="layer", help="per layer or one threshold")
    p.set_defaults(make=lambda a, s: MagnitudePruning(sparsity=a.sparsity, scope=a.scope, **s))

    p = _attack_parser(sub, "fine-prune", "fine-pruning: prune dormant channels, then fine-tune", tuning=True)
    p.add_argument(
        "--channels",
        type=float,
        metavar="FRACTION",
        default=0.5,
        help="share of the last convolution's channels pruned (default: 0.5)",
    )
    p.set_defaults(make=lambda a, s: FinePruning(fraction=a.channels, **s))

    p = _attack_parser(sub, "quantize", "weight quantization to a number of bits")
    p.add_argument("--bits", type=int, default=8, help="bits per weight; 32 changes nothing (default: 8)")
    p.set_defaults(make=lambda a, s: WeightQuantization(bits=a.bits, **s))

    p = _attack_parser(sub, "noise", "Gaussian noise on every weight")
    p.add_argument("--std", type=float, default=0.1, help="noise std, relative to each tensor's std (default: 0.1)")
    p.add_argument("--absolute", action="store_true", help="use --std as an absolute standard deviation")
    p.set_defaults(make=lambda a, s: GaussianNoise(std=a.std, relative=not a.absolute, **s))

    p = _attack_parser(
        sub, "distill", "distillation / extraction into a fresh model (attacker's data only)", tuning=True, scratch=True
    )
    p.add_argument("--soft", action="store_true", help="learn soft outputs (default: predicted labels)")
    p.add_argument("--temperature", type=float, default=4.0, help="softmax temperature with --soft (default: 4)")
    p.add_argument(
        "--student",
        metavar="ARCH",
        choices=MODEL_NAMES,
        help=f"student architecture: {', '.join(MODEL_NAMES)} (default: the watermarked model's, re-initialised)",
    )
    p.set_defaults(make=_make_distill)

    p = _attack_parser(sub, "preprocess", "input quantization / blur / noise at query time")
    p.add_argument("--bits", type=int, help="quantize pixels to 2**BITS levels")
    p.add_argument("--blur", type=float, default=0.0, metavar="SIGMA", help="Gaussian blur sigma in pixels")
    p.add_argument("--noise", type=float, default=0.0, metavar="STD", help="Gaussian pixel noise std")
    p.set_defaults(make=lambda a, s: InputPreprocessing(bits=a.bits, blur_sigma=a.blur, noise_std=a.noise, **s))

    p = _common_parser(sub, "suite", "run every attack and write one results JSON (OUT/results.json)")
    p.add_argument("--target", metavar="NAME", help="target dataset for the transfer attack (skipped without)")
    p.add_argument("--target-dir", metavar="DIR", help="folder with the target dataset's files")
    p.add_argument("--only", metavar="A,B", help="run only these labels or attack names (e.g. ftal,prune,distill)")
    p.add_argument("--epochs", type=int, help="epochs of every training attack (default: the owner's, per the paper)")
    p.add_argument("--save-models", action="store_true", help="also save every attacked model under OUT/LABEL/")
    add_engine_options(p, "the attacks")
    p.set_defaults(handler=run_suite_command)

    pol_spoof_cmd.register(sub)


def _common_parser(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    p.add_argument("model_dir", metavar="MODEL", help="the watermarked model directory")
    p.add_argument(
        "--key",
        required=True,
        metavar="DIR",
        help="the owner's key directory (marking_key.json and verification_key.json), for the real verifier",
    )
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the results (and attacked models)")
    p.add_argument(
        "--data-fraction",
        type=float,
        default=1.0,
        help="share of the training split the adversary holds, drawn with --seed (default: 1.0, the paper's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the attack's random choices (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_trust_option(p)
    add_runtime_options(p)
    return p


def _attack_parser(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    *,
    tuning: bool = False,
    scratch: bool = False,
    epochs: int | None = None,
) -> argparse.ArgumentParser:
    p = _common_parser(sub, name, summary)
    if tuning:
        origin = "the owner's initial learning rate and schedule" if scratch else "the last learning rate of training"
        p.add_argument(
            "--epochs",
            type=int,
            default=epochs,
            help=f"(default: {epochs if epochs is not None else 'the epochs of training'}, from model.json, "
            f"else {CLI_TRAINING.epochs})",
        )
        p.add_argument(
            "--lr", type=float, help=f"learning rate (default: {origin}, from model.json, else {CLI_TRAINING.lr})"
        )
        p.add_argument("--batch-size", type=int, help="(default: training's, else 64)")
        p.add_argument("--momentum", type=float, help="(default: training's, else 0.9)")
        p.add_argument("--weight-decay", type=float, help="(default: training's, else 5e-4)")
    p.set_defaults(handler=run_attack_command, tuning=tuning, scratch=scratch)
    return p


def _make_piracy(args: argparse.Namespace, settings: dict[str, Any]) -> Attack:
    # The pirate's key is drawn here so that it can be saved next to the model (OUT/pirate-key) for a judge.
    key = pirate_key(tuple(args.classes), tuple(args.input_shape), size=args.trigger_size, seed=args.seed)
    return OwnershipPiracy(
        finetune=args.finetune, key=key, trigger_size=args.trigger_size, embed_epochs=args.embed_epochs, **settings
    )


def _make_distill(args: argparse.Namespace, settings: dict[str, Any]) -> Attack:
    student = None
    if args.student:
        student = spec_for_data(args.student, args.input_shape, len(args.classes))
    return Distillation(soft=args.soft, temperature=args.temperature, student=student, **settings)


def _settings(args: argparse.Namespace, info: ModelInfo) -> dict[str, Any]:
    common = {
        "data_fraction": args.data_fraction,
        "seed": args.seed,
        "device": args.device,
        "progress": not args.no_progress,
    }
    if not args.tuning:
        return common
    owner = training_config(info) or CLI_TRAINING
    settings = from_scratch_settings(owner) if args.scratch else paper_settings(owner)
    for name in ("epochs", "lr", "batch_size", "momentum", "weight_decay"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return {**settings, **common}


def _load(args: argparse.Namespace) -> tuple[nn.Module, ModelInfo, DataSplits, Any]:
    apply_runtime(args)
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code, device=args.device)
    data = load_data(args)
    check_compatible(info, data, args.model_dir)
    mk, vk = load_key_pair(args.key)
    recorded = (info.extra or {}).get("watermark")
    if isinstance(recorded, dict) and recorded.get("key_id") not in (None, vk.key_id):
        log.warning(
            "%s was marked with key %s…, but --key holds key %s…",
            args.model_dir,
            str(recorded["key_id"])[:16],
            vk.key_id[:16],
        )
    args.input_shape, args.classes = info.input_shape, info.classes
    return model, info, data, watermark_verifier(mk, vk)


def run_attack_command(args: argparse.Namespace) -> int:
    model, info, data, verifier = _load(args)
    attack = args.make(args, _settings(args, info))
    target = load_dataset(args.target, args.target_dir) if getattr(args, "target", None) else None
    attacked, result = attack(model, target if target is not None else data.train, test=data.test, verifier=verifier)
    out = Path(args.out)
    save_attacked(out, attacked, info, result, args.model_dir, model)
    if isinstance(attack, OwnershipPiracy) and attack.key is not None:
        from ..watermark import save_key_pair

        save_key_pair(out / PIRATE_KEY_DIR, *attack.key, pngs=False)
    write_json_atomic(out / RESULT_FILE, result.to_json())
    if args.json:
        print_json(result.to_json())
    else:
        print(describe(result, args.attack))
        print(f"saved the attacked model and {RESULT_FILE} to {out}")
    return 1 if result.watermark_removed else 0


def save_attacked(
    out: Path, attacked: nn.Module, info: ModelInfo, result: AttackResult, source: str, original: nn.Module
) -> None:
    """The thief's model in OUT and, where the head was attacked, the original-head view in OUT/original-head."""
    extra = {
        **(info.extra or {}),
        "attacked_from": source,
        "attack": result.to_json(),
        "test_accuracy": result.test_accuracy_after,
    }
    if isinstance(attacked, PreprocessedModel):  # the weights are unchanged; the transforms live in the pipeline
        extra["preprocess"] = attacked.describe()
        attacked = attacked.model
    if result.attack == "transfer":
        classes = tuple(result.details["target_class_names"])
        own = ModelInfo(
            transferred_spec(info.spec, len(classes)),
            classes,
            info.input_shape,
            {**extra, "dataset": result.details["target"], "test_accuracy": result.details["target_test_accuracy"]},
        )
    elif isinstance(result.details.get("student"), dict):  # distilled into another architecture
        student = result.details["student"]
        own = ModelInfo(ModelSpec(student["architecture"], student["arguments"]), info.classes, info.input_shape, extra)
    else:
        own = ModelInfo(info.spec, info.classes, info.input_shape, extra)
    save_model(out, attacked.cpu(), own)
    if result.original_head is not None:
        view = with_head(attacked, last_linear(original))
        save_model(
            out / ORIGINAL_HEAD_DIR,
            view.cpu(),
            ModelInfo(
                info.spec,
                info.classes,
                info.input_shape,
                {
                    **extra,
                    "view": "the attacked body with the original head swapped back in (Adi et al.'s view)",
                    "test_accuracy": result.original_head.test_accuracy,
                },
            ),
        )


def describe(result: AttackResult, label: str | None = None) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    views = []
    if result.attacker_head is not None:
        views.append(f"{pct(result.attacker_head.trigger_accuracy)} with the attacker's head")
    if result.original_head is not None:
        views.append(f"{pct(result.original_head.trigger_accuracy)} with the original head")
    verdict = "accepts" if result.accepted else "rejects"
    removed = "WATERMARK REMOVED" if result.watermark_removed else "watermark not removed"
    return (
        f"{label or result.attack}: {result.data['samples']} adversary samples, {result.wall_seconds:.1f} s; "
        f"test accuracy {pct(result.test_accuracy_before)} -> {pct(result.test_accuracy_after)}; "
        f"trigger accuracy {pct(result.trigger_accuracy_before)} -> {', '.join(views)}; "
        f"verifier {verdict} ({result.view.replace('_', ' ')}): {removed}"
    )


def suite_entries(args: argparse.Namespace, info: ModelInfo) -> list[SuiteEntry]:
    """The suite's entries as the options choose them (the same on every engine: each attack seeds itself)."""
    owner = training_config(info) or CLI_TRAINING
    entries: list[SuiteEntry] = default_suite(
        owner,
        epochs=args.epochs,
        data_fraction=args.data_fraction,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    if args.only:
        entries = select(entries, [n.strip() for n in args.only.split(",") if n.strip()])
    return entries


def run_suite_command(args: argparse.Namespace) -> int:
    from ..attacks.planning import describe_duration, estimate_seconds, measure_epoch_seconds, suite_plan
    from ..experiments.notes import collected_warnings
    from .progress import ProgressPrinter

    args.tuning = False
    model, info, data, verifier = _load(args)
    owner = training_config(info) or CLI_TRAINING
    entries = suite_entries(args, info)
    target = load_dataset(args.target, args.target_dir) if args.target else None
    out = Path(args.out)
    runnable = [e for e in entries if target is not None or not e.target]
    if args.engine != "local":
        from .attack_tasks import run_suite_on_engine

        with engine_from_args(args) as engine:
            doc, notes = run_suite_on_engine(args, engine, [e.label for e in runnable])
        return finish_suite(args, out, doc, notes)
    seconds = estimate_seconds(suite_plan(runnable), measure_epoch_seconds(model, data.train, owner))
    if seconds > LONG_RUN_SECONDS:
        print(
            f"attack suite: {len(runnable)} attacks, {describe_duration(seconds)} on this machine "
            "(measured from a few training steps; --only and --epochs make it shorter)",
            file=sys.stderr,
            flush=True,
        )
    printer = ProgressPrinter(enabled=not args.no_progress)

    def saved(entry: SuiteEntry, attacked: nn.Module, result: AttackResult) -> None:
        if args.save_models:
            save_attacked(out / entry.label, attacked, info, result, args.model_dir, model)
        if not args.json:
            printer.write(describe(result, entry.label))

    notes: list[str] = []  # the pirate's embedding is the suite's choice: its warnings are noted once, at the end
    with printer, collected_warnings(notes, "modeldeed.watermark"):
        results = run_suite(
            model,
            data.train,
            test=data.test,
            verifier=verifier,
            entries=entries,
            target=target,
            on_result=saved,
            on_progress=printer,
        )
    return finish_suite(args, out, [r.to_json() for r in results], notes)


def finish_suite(args: argparse.Namespace, out: Path, doc: list[dict[str, Any]], notes: list[str]) -> int:
    """Write OUT/results.json, print the summary; exit 1 if any attack removed the watermark."""
    write_json_atomic(out / SUITE_FILE, doc)
    removed = [r["label"] for r in doc if r["watermark_removed"]]
    if args.json:
        print_json(doc)
    else:
        print(
            f"{len(doc)} attacks; watermark removed by: {', '.join(removed) or 'none'}; results in {out / SUITE_FILE}"
        )
        for note in dict.fromkeys(notes):
            print(f"note from the attacks ({notes.count(note)}x): {note}")
    return 1 if removed else 0
