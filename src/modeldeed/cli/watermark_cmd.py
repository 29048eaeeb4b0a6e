"""`modeldeed watermark ...`: keygen, pkeygen, embed, verify, pverify, reveal, security."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..models import ModelInfo, load_model, save_model
from ..training import accuracy
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
from .training_options import add_train_options, auto_k, config_from_args


def register(commands: argparse._SubParsersAction) -> None:
    from ..watermark import DEFAULT_EPSILON, DEFAULT_SECURITY_BITS, DEFAULT_SIZE, DEFAULT_TRIGGERS_PER_BATCH

    group = commands.add_parser(
        "watermark",
        help="watermark a model by backdooring (Adi et al. 2018) and verify ownership",
        description="KeyGen, Mark and Verify of Adi et al., 'Turning Your Weakness Into a Strength' (USENIX Security "
        "2018), with public verification by cut-and-choose or by disjoint trigger sets.",
    )
    sub = group.add_subparsers(dest="watermark_command", metavar="COMMAND", required=True)

    k = sub.add_parser(
        "keygen",
        help="make a marking key (secret) and a verification key (public)",
        description="Draw a trigger set (abstract images, or --images), random labels and one commitment "
        "per image and label. Publish verification_key.json; keep the rest secret.",
    )
    _key_options(k, DEFAULT_EPSILON)
    k.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"|T|, number of triggers (default: {DEFAULT_SIZE})")
    k.add_argument(
        "--security",
        type=int,
        metavar="N",
        help="refuse unless a model that never saw the triggers passes with probability at most 2^-N",
    )
    k.set_defaults(handler=run_keygen)

    p = sub.add_parser(
        "pkeygen",
        help="make a publicly verifiable key (cut-and-choose, or bounded disjoint sets)",
        description="Cut-and-choose (default): l = 4N triggers, challenge e = H(vk) by Fiat-Shamir, the "
        "e=1 half opened inside the public key, only the e=0 half embedded. --sets S: S "
        "disjoint trigger sets of --size each, all embedded, one revealed per verification.",
    )
    _key_options(p, DEFAULT_EPSILON)
    p.add_argument(
        "--security",
        type=int,
        default=DEFAULT_SECURITY_BITS,
        metavar="N",
        help=f"cut-and-choose security parameter n; the key has 4n triggers (default: {DEFAULT_SECURITY_BITS})",
    )
    p.add_argument("--sets", type=int, metavar="S", help="make a bounded key of S disjoint trigger sets instead")
    p.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help=f"triggers per set with --sets (default: {DEFAULT_SIZE})"
    )
    p.set_defaults(handler=run_pkeygen)

    e = sub.add_parser(
        "embed",
        help="PRETRAINED: continue training a model with the trigger set mixed in",
        description="Mark a trained model: continue training it on its data with k trigger images "
        "appended to every batch.",
    )
    e.add_argument("model_dir", metavar="MODEL", help="a model directory written by `modeldeed train`")
    e.add_argument("--key", required=True, metavar="DIR", help="key directory from keygen/pkeygen")
    add_data_options(e)
    e.add_argument("--out", required=True, metavar="DIR", help="where to write the watermarked model")
    e.add_argument(
        "--triggers-per-batch",
        type=int,
        metavar="K",
        help=f"trigger images appended to each batch (default: the paper's {DEFAULT_TRIGGERS_PER_BATCH}, or enough "
        "to show each trigger about 60 times on small data)",
    )
    add_trust_option(e)
    add_train_options(e)
    add_runtime_options(e)
    e.set_defaults(handler=run_embed)

    v = sub.add_parser(
        "verify",
        help="Verify(mk, vk, M): exit 0 accepted, 1 rejected, 2 bad input",
        description="Open every commitment, classify the triggers and accept iff at most "
        "floor(epsilon*|T|) disagree with their committed labels.",
    )
    v.add_argument("model_dir", metavar="MODEL", help="the model directory to check")
    v.add_argument("--key", required=True, metavar="DIR", help="key directory holding both keys")
    _verify_options(v)
    v.set_defaults(handler=run_verify)

    pv = sub.add_parser(
        "pverify",
        help="public verification: exit 0 accepted, 1 rejected, 2 bad input",
        description="Cut-and-choose key: recompute e = H(vk), check that the opened half opens and "
        "is not labelled like the data, then check the hidden half against the model "
        "(needs the marking key: the paper's zero-knowledge step, run in the clear). "
        "Bounded key: check the set revealed by `watermark reveal` against the model.",
    )
    pv.add_argument("model_dir", metavar="MODEL", help="the model directory to check")
    pv.add_argument(
        "--key",
        required=True,
        metavar="DIR",
        help="directory with verification_key.json (and, for the hidden half, marking_key.json)",
    )
    pv.add_argument("--reveal", metavar="DIR", help="bounded key: the revealed set from `watermark reveal`")
    pv.add_argument("--public-only", action="store_true", help="ignore a marking key in --key")
    pv.add_argument(
        "--reference",
        metavar="MODEL",
        help="a model trained on the data, standing in for the ground "
        "truth: too many agreements with opened labels reject",
    )
    _verify_options(pv)
    pv.set_defaults(handler=run_pverify)

    r = sub.add_parser(
        "reveal",
        help="bounded key: open the next unused trigger set for one public verification",
        description="Write the next unused set's images, labels and nonces to --out and record it "
        "as used in the key directory's usage.json.",
    )
    r.add_argument("--key", required=True, metavar="DIR", help="the owner's bounded key directory")
    r.add_argument("--out", required=True, metavar="DIR", help="where to write reveal.json and reveal.safetensors")
    r.add_argument("--note", default="", help="why or to whom the set was revealed (kept in usage.json)")
    r.set_defaults(handler=run_reveal)

    s = sub.add_parser(
        "security",
        help="chance of passing by luck, and the smallest |T| for 2^-N",
        description="P[Bin(|T|, 1/|L|) >= |T| - floor(eps*|T|)] exactly, and the smallest trigger set "
        "size that keeps it at most 2^-N (see docs/watermark.md for the derivation).",
    )
    s.add_argument("--classes", type=int, required=True, metavar="L", help="number of classes |L|")
    s.add_argument("--epsilon", type=float, default=DEFAULT_EPSILON, help=f"(default: {DEFAULT_EPSILON})")
    s.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"|T| to evaluate (default: {DEFAULT_SIZE})")
    s.add_argument("--bits", type=int, default=64, metavar="N", help="security level 2^-N (default: 64)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(handler=run_security)


def _key_options(p: argparse.ArgumentParser, epsilon: float) -> None:
    add_data_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="key directory to create")
    p.add_argument(
        "--epsilon",
        type=float,
        default=epsilon,
        help=f"fraction of triggers allowed to disagree, fixed in the key (default: {epsilon})",
    )
    p.add_argument("--images", metavar="DIR", help="use your own trigger images from DIR instead of abstract ones")
    p.add_argument("--force", action="store_true", help="overwrite an existing key in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="NAME",
        help="dataset for test accuracy and for the check that no trigger copies a data image with its true class",
    )
    p.add_argument("--data-dir", metavar="DIR", help="folder with the dataset's files")
    p.add_argument("--epsilon", type=float, help="override the key's epsilon (not for real disputes)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (accepted, trigger_accuracy, chance_probability, reasons, ...)",
    )
    add_trust_option(p)


def _make_keys(args: argparse.Namespace, make: Any, count: int) -> tuple[Any, Any]:
    from ..watermark import load_trigger_images, save_key_pair
    from ..watermark.keys import VK_FILE

    out = Path(args.out)
    if (out / VK_FILE).exists() and not args.force:
        raise ModeldeedError(f"{out}: already holds a key; pass --force to replace it (the old one is then lost)")
    data = load_data(args)
    if args.force:  # nothing of the old key may linger next to the new one
        from ..watermark.keys import MK_FILE, MK_TENSORS, TRIGGER_PNG_DIR, VK_TENSORS
        from ..watermark.public import USAGE_FILE

        for name in (VK_FILE, VK_TENSORS, MK_FILE, MK_TENSORS, USAGE_FILE):
            (out / name).unlink(missing_ok=True)
        for png in (out / TRIGGER_PNG_DIR).glob("*.png"):
            png.unlink()
    images = None
    if args.images:
        images = load_trigger_images(args.images, data.train.input_shape, count)
    mk, vk = make(data.train.classes, data.train.input_shape, images)
    save_key_pair(out, mk, vk)
    return mk, vk


def _describe_key(args: argparse.Namespace, vk: Any, size: int, extra: dict[str, Any]) -> None:
    from ..watermark import minimum_trigger_set_size, security_figures

    figures = security_figures(size, len(vk.classes), vk.epsilon)
    doc = {"key_id": vk.key_id, "scheme": vk.scheme, "triggers": vk.size, "out": args.out, **figures.to_json(), **extra}
    try:
        doc["minimum_size_for_2^-64"] = minimum_trigger_set_size(64, len(vk.classes), vk.epsilon)
    except ModeldeedError:
        doc["minimum_size_for_2^-64"] = None
    if args.json:
        print_json(doc)
        return
    out = Path(args.out)
    print(f"{vk.scheme} key {vk.key_id[:16]}… with {vk.size} triggers written to {out}")
    public = "verification_key.json" + (" and verification_key.safetensors" if vk.opened is not None else "")
    print(f"  publish: {out / public}")
    print(f"  keep secret: {out / 'marking_key.json'}, marking_key.safetensors, triggers/")
    chance = _probability(figures.chance_probability, figures.chance_log2)
    print(
        f"  accept iff >= {figures.threshold} of {size} embedded triggers agree (epsilon {vk.epsilon}); "
        f"a model that never saw them passes with probability {chance}"
    )
    if doc["minimum_size_for_2^-64"] is not None:
        print(f"  2^-64 needs at least {doc['minimum_size_for_2^-64']} triggers")


def _probability(p: float, log2: float | None) -> str:
    if log2 is None or not math.isfinite(log2):
        return f"{p:.3g}"
    return f"{p:.3g} (2^{log2:.1f})"


def run_keygen(args: argparse.Namespace) -> int:
    from ..watermark import keygen, minimum_trigger_set_size

    def make(classes: Any, shape: Any, images: Any) -> Any:
        if args.security is not None:
            needed = minimum_trigger_set_size(args.security, len(classes), args.epsilon)
            if args.size < needed:
                raise ModeldeedError(
                    f"--size {args.size} is too small for 2^-{args.security} with {len(classes)} "
                    f"classes and epsilon {args.epsilon}: use at least {needed}"
                )
        return keygen(classes, shape, size=args.size, epsilon=args.epsilon, images=images)

    _mk, vk = _make_keys(args, make, args.size)
    _describe_key(args, vk, vk.size, {})
    return 0


def run_pkeygen(args: argparse.Namespace) -> int:
    from ..watermark import bounded_keygen, pkeygen

    if args.sets is not None:
        _mk, vk = _make_keys(
            args,
            lambda c, s, im: bounded_keygen(c, s, sets=args.sets, set_size=args.size, epsilon=args.epsilon, images=im),
            args.sets * args.size,
        )
        _describe_key(args, vk, vk.set_size, {"sets": vk.sets})
        return 0
    mk, vk = _make_keys(
        args,
        lambda c, s, im: pkeygen(c, s, security_bits=args.security, epsilon=args.epsilon, images=im),
        4 * args.security,
    )
    hidden = len(mk.marking_indices())
    _describe_key(args, vk, hidden, {"opened": vk.size - hidden, "hidden": hidden, "security_bits": args.security})
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from ..watermark import load_marking_key, mark_pretrained

    apply_runtime(args)
    config = config_from_args(args)
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code)
    data = load_data(args)
    check_compatible(info, data, args.model_dir)
    key = load_marking_key(args.key)
    k = args.triggers_per_batch or auto_k(key, data.train, config)
    result = mark_pretrained(model, key, data.train, config, k=k, progress=not args.no_progress)
    test_acc = accuracy(model, data.test)
    extra = dict(info.extra or {})
    extra.update(
        {
            "test_accuracy": test_acc,
            "watermark": {
                "key_id": key.key_id,
                "mode": "pretrained",
                "base_model": str(args.model_dir),
                "triggers_per_batch": k,
                "training": config.to_json(),
            },
        }
    )
    save_model(Path(args.out), model.cpu(), ModelInfo(info.spec, info.classes, info.input_shape, extra))
    print(
        f"embedded {len(key.marking_indices())} triggers into {args.model_dir}: {result.steps} steps in "
        f"{result.seconds:.1f} s, test accuracy {percent(test_acc)}; saved to {args.out}"
    )
    return 0


def _load_checked_model(args: argparse.Namespace, vk: Any) -> Any:
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code)
    if tuple(info.input_shape) != tuple(vk.input_shape) or len(info.classes) != len(vk.classes):
        raise ModeldeedError(
            f"{args.model_dir}: the model takes {list(info.input_shape)} inputs and has "
            f"{len(info.classes)} classes; the key is for {list(vk.input_shape)} and "
            f"{len(vk.classes)} classes"
        )
    return model


def _datasets(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    if not args.data:
        return None, []
    data = load_data(args)
    return data.test, [data.train, data.test]


def _report(args: argparse.Namespace, verdict: Any) -> int:
    if args.json:
        print_json({"model": args.model_dir, **verdict.to_json()})
        return 0 if verdict.accepted else 1
    word = "ACCEPTED" if verdict.accepted else "REJECTED"
    if verdict.trigger_accuracy is None:
        print(f"{word}: the model was not checked against the triggers")
    else:
        print(
            f"{word}: {verdict.agreements} of {verdict.triggers} triggers ({percent(verdict.trigger_accuracy)}) "
            f"classified as committed; at least {verdict.threshold} needed (epsilon {verdict.epsilon})"
        )
    print(
        f"chance that a model which never saw the triggers passes: "
        f"{_probability(verdict.chance_probability, verdict.chance_log2)}"
    )
    if verdict.test_accuracy is not None:
        print(f"test accuracy: {percent(verdict.test_accuracy)}")
    for key, value in verdict.metrics.items():
        print(f"  {key}: {value}")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    return 0 if verdict.accepted else 1


def run_verify(args: argparse.Namespace) -> int:
    from ..watermark import load_key_pair, verify

    mk, vk = load_key_pair(args.key)
    model = _load_checked_model(args, vk)
    test, data = _datasets(args)
    return _report(args, verify(mk, vk, model, test_data=test, epsilon=args.epsilon, data=data))


def run_pverify(args: argparse.Namespace) -> int:
    from ..watermark import load_marking_key, load_reveal, load_verification_key, pverify
    from ..watermark.keys import MK_FILE

    vk = load_verification_key(args.key)
    model = _load_checked_model(args, vk)
    mk = None
    if vk.scheme == "cut-and-choose" and not args.public_only and (Path(args.key) / MK_FILE).exists():
        mk = load_marking_key(args.key)
    reveal = load_reveal(args.reveal, vk) if args.reveal else None
    reference = None
    if args.reference:
        reference = _load_checked_model(
            argparse.Namespace(model_dir=args.reference, trust_model_code=args.trust_model_code), vk
        )
    test, data = _datasets(args)
    verdict = pverify(
        vk,
        model,
        marking_key=mk,
        reveal=reveal,
        data=data,
        reference_model=reference,
        test_data=test,
        epsilon=args.epsilon,
    )
    return _report(args, verdict)


def run_reveal(args: argparse.Namespace) -> int:
    from ..watermark import load_verification_key, reveal_next_set

    reveal = reveal_next_set(args.key, args.out, note=args.note)
    sets = load_verification_key(args.key).sets
    print(
        f"revealed set {reveal.set_index} ({len(reveal.opening.indices)} triggers) into {args.out}; "
        f"recorded in {args.key}/usage.json"
    )
    print(f"check it with: modeldeed watermark pverify MODEL --key {args.key} --reveal {args.out}")
    if reveal.set_index == sets - 1:
        print("that was the last unused set of this key")
    return 0


def run_security(args: argparse.Namespace) -> int:
    from ..watermark import hoeffding_size, minimum_trigger_set_size, security_figures

    figures = security_figures(args.size, args.classes, args.epsilon)
    doc = {
        **figures.to_json(),
        "bits": args.bits,
        "minimum_size": minimum_trigger_set_size(args.bits, args.classes, args.epsilon),
        "minimum_size_first": minimum_trigger_set_size(args.bits, args.classes, args.epsilon, stable=False),
        "hoeffding_size": hoeffding_size(args.bits, args.classes, args.epsilon),
    }
    if args.json:
        print_json(doc)
        return 0
    print(
        f"|T| = {args.size}, |L| = {args.classes}, epsilon = {args.epsilon}: accept iff >= {figures.threshold} "
        f"agree; chance {_probability(figures.chance_probability, figures.chance_log2)}"
    )
    print(
        f"2^-{args.bits} needs |T| >= {doc['minimum_size']} (exact; first size that meets it: "
        f"{doc['minimum_size_first']}; Hoeffding bound: {doc['hoeffding_size']})"
    )
    return 0
