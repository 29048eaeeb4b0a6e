"""`modeldeed watermark ...`: keygen, pkeygen, embed, verify, pverify, reveal, security."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..models import ModelInfo, load_model, save_model
from ..training import accuracy
from . import zk_cmd
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
from .registration_options import print_registration as _print_registration
from .registration_options import register_with as _register
from .registration_options import registrar as _registrar
from .registration_options import registry_options as _registry_options
from .training_options import add_train_options, config_from_args, triggers_per_batch


def _count(low: int, high: int) -> Any:
    """An argparse type: an integer in [low, high] (no NaN, no floats, no negatives unless allowed)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high:,}], got {value:,}")
        return value

    return parse


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a finite number in [0, 1), got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    from ..watermark import DEFAULT_EPSILON, DEFAULT_SECURITY_BITS, DEFAULT_SIZE, DEFAULT_TRIGGERS_PER_BATCH
    from ..watermark.limits import MAX_CLASSES, MAX_SECURITY_BITS, MAX_TRIGGERS

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
        description="Draw a trigger set (abstract images, or --images), derive its labels from the image "
        "commitments (or take --labels) and commit to every image and label. Publish verification_key.json; "
        "keep the rest secret.",
    )
    _key_options(k, DEFAULT_EPSILON)
    k.add_argument(
        "--size",
        type=_count(1, MAX_TRIGGERS),
        help=f"|T|, number of triggers (default: {DEFAULT_SIZE}, or every image of --images; at most {MAX_TRIGGERS:,})",
    )
    k.add_argument(
        "--security",
        type=_count(1, MAX_SECURITY_BITS),
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
        type=_count(1, MAX_TRIGGERS // 4),
        default=DEFAULT_SECURITY_BITS,
        metavar="N",
        help=f"cut-and-choose security parameter n; the key has 4n triggers (default: {DEFAULT_SECURITY_BITS})",
    )
    p.add_argument(
        "--sets", type=_count(2, MAX_TRIGGERS // 2), metavar="S", help="make a bounded key of S disjoint trigger sets"
    )
    p.add_argument(
        "--size",
        type=_count(1, MAX_TRIGGERS),
        default=DEFAULT_SIZE,
        help=f"triggers per set with --sets (default: {DEFAULT_SIZE}; sets × size at most {MAX_TRIGGERS:,})",
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
        help=f"trigger images appended to each batch, 1 to the batch size (default: the paper's "
        f"{DEFAULT_TRIGGERS_PER_BATCH}, or enough to show each trigger about 60 times on small data)",
    )
    add_trust_option(e)
    add_train_options(e)
    add_runtime_options(e)
    e.set_defaults(handler=run_embed)

    v = sub.add_parser(
        "verify",
        help="Verify(mk, vk, M): exit 0 accepted, 1 rejected, 2 bad input",
        description="Open every commitment, check the labels (derived keys: exactly the labels the image "
        "commitments dictate), classify the triggers and accept iff at most floor(epsilon*|T|) disagree.",
    )
    v.add_argument("model_dir", metavar="MODEL", help="the model directory to check")
    v.add_argument("--key", required=True, metavar="DIR", help="key directory holding both keys")
    v.add_argument(
        "--first-seen",
        metavar="TIME",
        help="when the model first appeared (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ), compared with the key's "
        "registration (--receipt); a key with chosen labels registered at or after it is rejected",
    )
    _verify_options(v)
    v.set_defaults(handler=run_verify)

    pv = sub.add_parser(
        "pverify",
        help="public verification: exit 0 accepted, 1 rejected, 2 bad input",
        description="Cut-and-choose key: recompute e = H(vk), check that the opened half opens and "
        "is not labelled like the data, then check the hidden half against the model "
        "(needs the marking key: the paper's zero-knowledge step, run in the clear). "
        "Bounded key: check the set revealed by `watermark reveal` against the model; a set that the evidence "
        "shows public before (an earlier reveal, the owner's usage.json, or a reveal before --first-seen) "
        "does not count.",
    )
    pv.add_argument("model_dir", metavar="MODEL", help="the model directory to check")
    pv.add_argument(
        "--key",
        required=True,
        metavar="DIR",
        help="directory with verification_key.json (and, for the hidden half, marking_key.json; a usage.json "
        "there is read as evidence of earlier reveals)",
    )
    pv.add_argument("--reveal", metavar="DIR", help="bounded key: the revealed set from `watermark reveal`")
    pv.add_argument(
        "--other-reveal",
        action="append",
        default=[],
        metavar="DIR",
        help="bounded key: another reveal of this key that you hold (repeatable); a set revealed before does "
        "not count again",
    )
    pv.add_argument(
        "--reveal-receipt",
        metavar="RECEIPT.json",
        help="bounded key: the reveal's registration receipt (`reveal --registry` saves it in the reveal "
        "directory); the set was public by its time at the latest",
    )
    pv.add_argument(
        "--first-seen",
        metavar="TIME",
        help="when the model first appeared (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ): a set revealed before then "
        "does not count, and a key with chosen labels registered (--receipt) at or after it is rejected",
    )
    pv.add_argument("--public-only", action="store_true", help="ignore a marking key in --key")
    _verify_options(pv)
    pv.set_defaults(handler=run_pverify)

    r = sub.add_parser(
        "reveal",
        help="bounded key: open one unused trigger set for one public verification",
        description="Write an unused set's images, labels and nonces to --out (reveal.json, whose SHA-256 is "
        "the reveal id, and reveal.safetensors) and record it in the key directory's usage.json first. A set "
        "that was revealed before is refused.",
    )
    r.add_argument("--key", required=True, metavar="DIR", help="the owner's bounded key directory")
    r.add_argument("--out", required=True, metavar="DIR", help="where to write reveal.json and reveal.safetensors")
    r.add_argument(
        "--set", type=_count(0, MAX_TRIGGERS), metavar="J", help="which set to reveal (default: the next unused)"
    )
    r.add_argument("--note", default="", help="why or to whom the set was revealed (kept in usage.json)")
    _registry_options(r, "the reveal", "reveal.receipt.json in --out")
    r.set_defaults(handler=run_reveal)

    s = sub.add_parser(
        "security",
        help="chance of passing by luck, and the smallest |T| for 2^-N",
        description="P[Bin(|T|, 1/|L|) >= |T| - floor(eps*|T|)] exactly, and the smallest trigger set "
        "size that keeps it at most 2^-N (see docs/watermark.md for the derivation).",
    )
    s.add_argument("--classes", type=_count(2, MAX_CLASSES), required=True, metavar="L", help="number of classes |L|")
    s.add_argument("--epsilon", type=_epsilon, default=DEFAULT_EPSILON, help=f"(default: {DEFAULT_EPSILON})")
    s.add_argument(
        "--size", type=_count(1, MAX_TRIGGERS), default=DEFAULT_SIZE, help=f"|T| to evaluate (default: {DEFAULT_SIZE})"
    )
    s.add_argument(
        "--bits", type=_count(1, MAX_SECURITY_BITS), default=64, metavar="N", help="security level 2^-N (default: 64)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(handler=run_security)

    zk_cmd.register(sub)  # zk-keygen, zk-setup, zk-prove, zk-verify (modeldeed.zk)


def _key_options(p: argparse.ArgumentParser, epsilon: float) -> None:
    from ..watermark.images import FITS

    add_data_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="key directory to create")
    p.add_argument(
        "--epsilon",
        type=_epsilon,
        default=epsilon,
        help=f"fraction of triggers allowed to disagree, fixed in the key (default: {epsilon})",
    )
    p.add_argument(
        "--images",
        metavar="DIR",
        help="use your own trigger images (the image files directly in DIR, in file-name order) instead of "
        "abstract ones",
    )
    p.add_argument(
        "--fit",
        choices=FITS,
        default="resize",
        help="how --images are made to fit the data's size: resize (aspect ratio not kept) or center-crop "
        "(shorter side scaled to fit, centre cut out) (default: resize)",
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="your own labels for --images (one per line in file-name order, or NAME LABEL lines); the key "
        "then says its labels were chosen, and so does every verdict",
    )
    p.add_argument(
        "--seed",
        type=_count(0, 2**64 - 1),
        help="a demonstration key: every secret follows from this public seed, recorded in the key and "
        "named in every verdict (never for real ownership)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing key in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _registry_options(p, "the verification key", "verification_key.receipt.json in --out")


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="NAME",
        help="dataset for test accuracy and for the check that no trigger copies a data image with its true class",
    )
    p.add_argument("--data-dir", metavar="DIR", help="folder with the dataset's files")
    p.add_argument(
        "--reference",
        metavar="MODEL",
        help="a model trained on the data, standing in for the ground truth: far more agreements with the "
        "checked triggers' labels than random labels allow reject",
    )
    p.add_argument("--epsilon", type=_epsilon, help="override the key's epsilon (not for real disputes)")
    p.add_argument(
        "--receipt",
        metavar="RECEIPT.json",
        help="the key's registration receipt (`keygen --registry` saves it in the key directory); checked offline "
        "with --log-key, and its time reported. Without it the verdict says the key is not bound in time",
    )
    p.add_argument("--log-key", metavar="PUB", help="the transparency log's public key file (for --receipt)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (accepted, trigger_accuracy, chance_probability, reasons, notes, ...)",
    )
    add_trust_option(p)


def _user_images(args: argparse.Namespace, data: Any, count: int | None, notes: list[str]) -> tuple[Any, Any]:
    """The user's trigger images (and labels) from --images/--labels, bounded and announced."""
    from ..watermark import KeyRandomness, image_files, read_labels_file, read_trigger_images
    from ..watermark.limits import check_trigger_budget

    names = image_files(args.images)
    labels = read_labels_file(args.labels, names, data.train.classes) if args.labels else None
    count = len(names) if count is None else count
    if count > len(names):
        raise ModeldeedError(f"{args.images}: holds {len(names)} images, the key needs {count}")
    check_trigger_budget(count, data.train.input_shape)
    if count < len(names):
        picked = KeyRandomness(args.seed).subset(len(names), count)
        notes.append(f"picked {count} of the {len(names)} images at random")
        names = [names[i] for i in picked]
        labels = [labels[i] for i in picked] if labels is not None else None
    user = read_trigger_images(args.images, data.train.input_shape, fit=args.fit, names=names)
    notes.append("trigger images: " + user.describe(args.images))
    return user.images, labels


def _make_keys(args: argparse.Namespace, make: Any, count: int | None) -> tuple[Any, Any, list[str]]:
    """Load the data's classes and shape, read --images/--labels, make the keys and write them to --out."""
    from ..watermark import save_key_pair
    from ..watermark.keys import VK_FILE
    from ..watermark.limits import check_trigger_budget

    out = Path(args.out)
    if (out / VK_FILE).exists() and not args.force:
        raise ModeldeedError(f"{out}: already holds a key; pass --force to replace it (the old one is then lost)")
    if args.labels and not args.images:
        raise ModeldeedError("--labels gives the labels of your own --images; pass --images DIR too")
    data = load_data(args)
    notes: list[str] = []
    images = labels = None
    if args.images:
        images, labels = _user_images(args, data, count, notes)
    elif count is not None:  # before any image is drawn
        check_trigger_budget(count, data.train.input_shape)
    mk, vk = make(data.train.classes, data.train.input_shape, images, labels)
    try:
        if args.force:  # nothing of the old key may linger next to the new one
            from ..watermark.keys import MK_FILE, MK_TENSORS, TRIGGER_PNG_DIR, VK_TENSORS
            from ..watermark.registration import KEY_RECEIPT_FILE
            from ..watermark.reveal import USAGE_FILE

            for name in (VK_FILE, VK_TENSORS, MK_FILE, MK_TENSORS, USAGE_FILE, KEY_RECEIPT_FILE):
                (out / name).unlink(missing_ok=True)
            for png in (out / TRIGGER_PNG_DIR).glob("*.png"):
                png.unlink()
        save_key_pair(out, mk, vk)
    except OSError as exc:
        raise ModeldeedError(f"{exc.filename or out}: cannot write the key ({exc.strerror or exc})") from None
    return mk, vk, notes


def _describe_key(args: argparse.Namespace, vk: Any, size: int, extra: dict[str, Any], notes: list[str]) -> None:
    from ..watermark import minimum_trigger_set_size, security_figures
    from ..watermark.verify import label_notes

    figures = security_figures(size, len(vk.classes), vk.epsilon)
    notes = [*notes, *label_notes(vk)]  # what every verdict on this key will say
    doc = {
        "key_id": vk.key_id,
        "scheme": vk.scheme,
        "triggers": vk.size,
        "labels": vk.label_kind,
        "demonstration": vk.demonstration,
        "out": args.out,
        "notes": notes,
        **figures.to_json(),
        **extra,
    }
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
    print(f"  publish (register it before the model appears): {out / public}")
    print(f"  keep secret: {out / 'marking_key.json'}, marking_key.safetensors, triggers/")
    if vk.label_kind == "derived":
        print("  labels: derived from the image commitments by a hash (nobody chose them)")
    else:
        print(f"  labels: chosen (from {args.labels})")
    chance = _probability(figures.chance_probability, figures.chance_log2)
    print(
        f"  accept iff >= {figures.threshold} of {size} embedded triggers agree (epsilon {vk.epsilon}); "
        f"a model that never saw them passes with probability {chance}"
    )
    if doc["minimum_size_for_2^-64"] is not None:
        print(f"  2^-64 needs at least {doc['minimum_size_for_2^-64']} triggers")
    for note in notes:
        print(f"  note: {note}")


def _register_key(args: argparse.Namespace, registrar: Any, vk: Any) -> dict[str, Any] | None:
    if registrar is None:
        return None
    from ..watermark.registration import KEY_RECEIPT_FILE, register_key

    how = f"modeldeed registry publish {args.out} --registry {args.registry} --identity {args.identity} --out ..."
    return _register(registrar, lambda c, i: register_key(c, i, vk), Path(args.out) / KEY_RECEIPT_FILE, "the key", how)


def _finish_key(args: argparse.Namespace, registration: dict[str, Any] | None) -> int:
    if registration is None:
        return 0
    if args.json:
        return 1 if registration["problems"] else 0
    return _print_registration(registration, "the verification key")


def _probability(p: float, log2: float | None) -> str:
    if log2 is None or not math.isfinite(log2):
        return f"{p:.3g}"
    return f"{p:.3g} (2^{log2:.1f})"


def run_keygen(args: argparse.Namespace) -> int:
    from ..watermark import DEFAULT_SIZE, keygen, minimum_trigger_set_size

    def make(classes: Any, shape: Any, images: Any, labels: Any) -> Any:
        size = len(images) if images is not None else args.size or DEFAULT_SIZE
        if args.security is not None:
            needed = minimum_trigger_set_size(args.security, len(classes), args.epsilon)
            if size < needed:
                raise ModeldeedError(
                    f"--size {size} is too small for 2^-{args.security} with {len(classes)} "
                    f"classes and epsilon {args.epsilon}: use at least {needed}"
                )
        return keygen(classes, shape, size=size, epsilon=args.epsilon, images=images, labels=labels, seed=args.seed)

    count = args.size if (args.size is not None or args.images) else DEFAULT_SIZE
    registrar = _registrar(args)
    _mk, vk, notes = _make_keys(args, make, count)
    registration = _register_key(args, registrar, vk)
    _describe_key(args, vk, vk.size, {"registration": registration}, notes)
    return _finish_key(args, registration)


def run_pkeygen(args: argparse.Namespace) -> int:
    from ..watermark import bounded_keygen, pkeygen
    from ..watermark.limits import MAX_TRIGGERS

    registrar = _registrar(args)
    if args.sets is not None:
        if args.sets * args.size > MAX_TRIGGERS:
            raise ModeldeedError(
                f"--sets {args.sets} × --size {args.size} = {args.sets * args.size:,} triggers; a key holds at most "
                f"{MAX_TRIGGERS:,}"
            )
        _mk, vk, notes = _make_keys(
            args,
            lambda c, s, im, lab: bounded_keygen(
                c, s, sets=args.sets, set_size=args.size, epsilon=args.epsilon, images=im, labels=lab, seed=args.seed
            ),
            args.sets * args.size,
        )
        registration = _register_key(args, registrar, vk)
        _describe_key(args, vk, vk.set_size, {"sets": vk.sets, "registration": registration}, notes)
        return _finish_key(args, registration)
    if getattr(args, "zk", False):  # `watermark zk-keygen`: also Poseidon-committed (modeldeed.zk)
        from ..zk import zk_pkeygen as pkeygen
    mk, vk, notes = _make_keys(
        args,
        lambda c, s, im, lab: pkeygen(
            c, s, security_bits=args.security, epsilon=args.epsilon, images=im, labels=lab, seed=args.seed
        ),
        4 * args.security,
    )
    hidden = len(mk.marking_indices())
    registration = _register_key(args, registrar, vk)
    extra = {"opened": vk.size - hidden, "hidden": hidden, "security_bits": args.security, "registration": registration}
    _describe_key(args, vk, hidden, extra, notes)
    return _finish_key(args, registration)


def run_embed(args: argparse.Namespace) -> int:
    from ..watermark import load_marking_key, mark_pretrained
    from ..watermark.mark import check_key_fits

    apply_runtime(args)
    config = config_from_args(args)
    model, info = load_model(args.model_dir, trust_code=args.trust_model_code)
    data = load_data(args)
    check_compatible(info, data, args.model_dir)
    key = load_marking_key(args.key)
    check_key_fits(key, data.train)
    k = triggers_per_batch(args, key, data.train, config)
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


def _load_checked_model(model_dir: str, trust_code: bool, vk: Any) -> Any:
    model, info = load_model(model_dir, trust_code=trust_code)
    if tuple(info.input_shape) != tuple(vk.input_shape) or len(info.classes) != len(vk.classes):
        raise ModeldeedError(
            f"{model_dir}: the model takes {list(info.input_shape)} inputs and has "
            f"{len(info.classes)} classes; the key is for {list(vk.input_shape)} and "
            f"{len(vk.classes)} classes"
        )
    return model


def _reference(args: argparse.Namespace, vk: Any) -> Any:
    return _load_checked_model(args.reference, args.trust_model_code, vk) if args.reference else None


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
    print(f"labels: {verdict.labels}" + (" (from the image commitments)" if verdict.labels == "derived" else ""))
    if verdict.test_accuracy is not None:
        print(f"test accuracy: {percent(verdict.test_accuracy)}")
    for key, value in verdict.metrics.items():
        if key not in ("registration", "reveal_registration"):  # in words among the notes and reasons
            print(f"  {key}: {value}")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    for note in verdict.notes:
        print(f"  note: {note}")
    return 0 if verdict.accepted else 1


def _first_seen(args: argparse.Namespace) -> Any:
    from ..watermark import parse_moment

    return parse_moment(args.first_seen) if args.first_seen else None


def _key_binding(args: argparse.Namespace, vk: Any, first_seen: Any) -> Any:
    """The key's registration from --receipt, checked offline with --log-key (None without a receipt)."""
    if not args.receipt:
        if args.log_key and not getattr(args, "reveal_receipt", None):
            raise ModeldeedError("--log-key checks a receipt: pass the key's --receipt too")
        return None
    if not args.log_key:
        raise ModeldeedError("--receipt is checked against the log's public key: pass --log-key PUB")
    from ..registry import load_log_key, load_receipt
    from ..watermark.registration import bind_key

    return bind_key(vk, load_receipt(args.receipt), load_log_key(args.log_key), first_seen=first_seen)


def run_verify(args: argparse.Namespace) -> int:
    from ..watermark import load_key_pair, verify
    from ..watermark.registration import bound_verdict

    mk, vk = load_key_pair(args.key)
    first_seen = _first_seen(args)
    if first_seen is not None and not args.receipt:
        raise ModeldeedError("--first-seen is compared with the key's registration: pass --receipt and --log-key")
    binding = _key_binding(args, vk, first_seen)
    model = _load_checked_model(args.model_dir, args.trust_model_code, vk)
    reference = _reference(args, vk)
    test, data = _datasets(args)
    verdict = verify(
        mk,
        vk,
        model,
        test_data=test,
        epsilon=args.epsilon,
        data=data,
        reference_model=reference,
        registered=binding.sentence() if binding is not None else None,
    )
    return _report(args, bound_verdict(verdict, binding) if binding is not None else verdict)


def run_pverify(args: argparse.Namespace) -> int:
    from ..watermark import load_marking_key, load_reveal, load_usage, load_verification_key, pverify, reveal_history
    from ..watermark.keys import MK_FILE
    from ..watermark.registration import bind_reveal, bound_verdict

    vk = load_verification_key(args.key)
    if vk.scheme != "bounded" and (args.reveal or args.other_reveal or args.reveal_receipt):
        raise ModeldeedError(
            f"--reveal, --other-reveal and --reveal-receipt belong to bounded keys; this is a {vk.scheme} key"
        )
    first_seen = _first_seen(args)
    if first_seen is not None and vk.scheme != "bounded" and not args.receipt:
        raise ModeldeedError("--first-seen is compared with the key's registration: pass --receipt and --log-key")
    if args.reveal_receipt and not (args.reveal and args.log_key):
        raise ModeldeedError("--reveal-receipt is the receipt of --reveal DIR, checked with --log-key PUB")
    bindings = [b for b in [_key_binding(args, vk, first_seen)] if b is not None]
    model = _load_checked_model(args.model_dir, args.trust_model_code, vk)
    mk = None
    if vk.scheme == "cut-and-choose" and not args.public_only and (Path(args.key) / MK_FILE).exists():
        mk = load_marking_key(args.key)
    reveal = load_reveal(args.reveal, vk) if args.reveal else None
    if reveal is not None and args.reveal_receipt:
        from ..registry import load_log_key, load_receipt

        receipt = load_receipt(args.reveal_receipt)
        bindings.append(bind_reveal(reveal, receipt, load_log_key(args.log_key), first_seen=first_seen))
    history = []
    if vk.scheme == "bounded":
        others = [load_reveal(path, vk) for path in args.other_reveal]
        key_dir = Path(args.key) if Path(args.key).is_dir() else Path(args.key).parent
        history = reveal_history(vk, usage=load_usage(key_dir, vk), reveals=others)
    test, data = _datasets(args)
    verdict = pverify(
        vk,
        model,
        marking_key=mk,
        reveal=reveal,
        data=data,
        reference_model=_reference(args, vk),
        test_data=test,
        epsilon=args.epsilon,
        history=history,
        first_seen=first_seen if vk.scheme == "bounded" else None,
        registered=bindings[0].sentence() if bindings and bindings[0].role == "key" else None,
    )
    return _report(args, bound_verdict(verdict, *bindings) if bindings else verdict)


def run_reveal(args: argparse.Namespace) -> int:
    from ..watermark import load_verification_key, reveal_set

    registrar = _registrar(args)
    reveal = reveal_set(args.key, args.out, set_index=args.set, note=args.note)
    sets = load_verification_key(args.key).sets
    print(
        f"revealed set {reveal.set_index} of {sets} ({len(reveal.opening.indices)} triggers) into {args.out}; "
        f"recorded in {args.key}/usage.json"
    )
    print(f"reveal id (SHA-256 of reveal.json; register it to fix the time): {reveal.reveal_id}")
    print(f"check it with: modeldeed watermark pverify MODEL --key {args.key} --reveal {args.out}")
    print("from now on this set is public: it counts only for models that appeared before it was revealed")
    if registrar is None:
        return 0
    from ..watermark.registration import REVEAL_RECEIPT_FILE, register_reveal

    how = f"modeldeed registry publish {args.out} --registry {args.registry} --identity {args.identity} --out ..."
    registration = _register(
        registrar, lambda c, i: register_reveal(c, i, reveal), Path(args.out) / REVEAL_RECEIPT_FILE, "the reveal", how
    )
    return _print_registration(registration, "the reveal")


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
