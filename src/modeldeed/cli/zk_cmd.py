"""`modeldeed watermark zk-keygen | zk-setup | zk-prove | zk-verify`: the watermark's hidden half in zero knowledge."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..errors import ModeldeedError
from .common import add_data_options, add_trust_option, load_data, percent, print_json

SLOTS = (4, 8, 16, 32, 64, 128)  # modeldeed.zk.circuit.SLOT_CHOICES (not imported here: the CLI loads lazily)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the zero-knowledge subcommands to the `watermark` group's subparsers."""
    from ..watermark import DEFAULT_EPSILON
    from .watermark_cmd import _count, _key_options, run_pkeygen

    k = sub.add_parser(
        "zk-keygen",
        help="make a cut-and-choose key whose triggers are also Poseidon-committed, for zk-prove/zk-verify",
        description="PKeyGen (l = 4N triggers, e = H(vk), the e=1 half opened) with a second, Poseidon "
        "commitment per trigger inside the key id. Triggers must be binary images (the abstract ones are). "
        "Needs Node.js and the o1js toolchain (make install).",
    )
    _key_options(k, DEFAULT_EPSILON)
    k.add_argument(
        "--security", type=_count(1, 512), default=16, metavar="N", help="cut-and-choose n; 4n triggers (default: 16)"
    )
    k.set_defaults(handler=run_pkeygen, zk=True, sets=None)

    s = sub.add_parser(
        "zk-setup",
        help="compile the zero-knowledge circuit for a model's architecture (once; cached)",
        description="Compile the o1js circuit for an MLP's layer widths and a slot count and cache its keys under "
        "$MODELDEED_ZK_CACHE (default ~/.cache/modeldeed/zk). zk-prove and zk-verify do this themselves when needed. "
        "A cached key that differs from the one modeldeed pins for that circuit is refused (exit 2).",
    )
    s.add_argument("model_dir", nargs="?", metavar="MODEL", help="a model directory (its widths are used)")
    s.add_argument("--dims", metavar="W,W,...", help="layer widths instead of a model, e.g. 64,16,10")
    s.add_argument("--slots", type=int, choices=SLOTS, help="triggers per proof (default: for --hidden, else 64)")
    s.add_argument("--hidden", type=int, metavar="H", help="number of hidden triggers to size the slots for")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    add_trust_option(s)
    s.set_defaults(handler=run_zk_setup)

    p = sub.add_parser(
        "zk-prove",
        help="owner: prove the hidden half in zero knowledge (exit 0 proved, 1 the model fails the claim, 2 bad input)",
        description="Quantize MODEL to integers, check that the integer model agrees with it, and prove that at "
        "least (1-epsilon) of the key's hidden triggers open their Poseidon commitments and are classified as "
        "committed, without revealing them.",
    )
    p.add_argument("model_dir", metavar="MODEL", help="the watermarked model directory (architecture mlp)")
    p.add_argument("--key", required=True, metavar="DIR", help="key directory from zk-keygen (marking key included)")
    p.add_argument("--out", required=True, metavar="PROOF", help="where to write the proof (JSON)")
    add_data_options(p, required=False)
    p.add_argument("--slots", type=int, choices=SLOTS, help="triggers per proof (default: the smallest that holds all)")
    p.add_argument(
        "--threshold",
        type=int,
        metavar="T",
        help="claim that at least T hidden triggers are classified as committed (default: the required "
        "ceil((1-epsilon)*h)); the circuit refuses a T the model does not reach (exit 1, no proof written)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_trust_option(p)
    p.set_defaults(handler=run_zk_prove)

    v = sub.add_parser(
        "zk-verify",
        help="anyone: check a zero-knowledge watermark proof (exit 0 accepted, 1 rejected, 2 bad input)",
        description="Re-derive the statement from MODEL and the public key (challenge, hidden commitments, the "
        "quantized weights, the circuit), check the opened half, and verify the proof. Needs no marking key. "
        "The cached circuit is not trusted: its verification key must match the one pinned in modeldeed's source "
        "(or, for unpinned widths, be writable by this user alone), and node verifies from a private copy of the "
        "cached reference strings that match their pins (docs/zk.md).",
    )
    v.add_argument("model_dir", metavar="MODEL", help="the model directory to check")
    v.add_argument("--public-key", required=True, metavar="PUB", help="verification key directory or its JSON")
    v.add_argument("--proof", required=True, metavar="PROOF", help="the proof file from zk-prove")
    v.add_argument(
        "--receipt",
        metavar="RECEIPT.json",
        help="the key's registration receipt, checked offline with --log-key; without it the verdict says the key "
        "is not bound in time",
    )
    v.add_argument("--log-key", metavar="PUB", help="the transparency log's public key file (for --receipt)")
    add_data_options(v, required=False)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    add_trust_option(v)
    v.set_defaults(handler=run_zk_verify)


def _model(path: str, trust: bool) -> tuple[Any, Any]:
    from ..models import load_model

    return load_model(path, trust_code=trust)


def _dims(args: argparse.Namespace) -> tuple[int, ...]:
    from ..zk.quantize import mlp_layers

    if args.dims:
        try:
            return tuple(int(d) for d in args.dims.split(","))
        except ValueError:
            raise ModeldeedError(f"--dims must be comma-separated integers, got {args.dims!r}") from None
    if not args.model_dir:
        raise ModeldeedError("give a MODEL directory or --dims")
    model, _info = _model(args.model_dir, args.trust_model_code)
    layers = mlp_layers(model)
    return (layers[0].in_features, *(layer.out_features for layer in layers))


def run_zk_setup(args: argparse.Namespace) -> int:
    from ..zk import CircuitSpec, choose_slots, setup

    dims = _dims(args)
    slots = args.slots or choose_slots(dims, args.hidden if args.hidden else 64)
    spec = CircuitSpec(dims, slots)
    key, compiled = setup(spec)
    doc = {
        "circuit_id": key.circuit_id,
        "dims": key.dims,
        "slots": key.slots,
        "rows": key.rows,
        "compiled_now": compiled,
        "compile_seconds": key.compile_seconds,
    }
    if args.json:
        print_json(doc)
    else:
        state = f"compiled in {key.compile_seconds:.0f} s" if compiled else "already cached"
        print(f"circuit {key.circuit_id[:16]}… for widths {key.dims}, {key.slots} slots, {key.rows} rows: {state}")
    return 0


def _test_data(args: argparse.Namespace, info: Any) -> Any:
    """--data, else the dataset the owner's model.json names (the owner's own file), else none."""
    from ..data import DATASET_NAMES

    if not args.data:
        named = (info.extra or {}).get("dataset")
        if named not in DATASET_NAMES:
            return None
        args.data = named
    return load_data(args).test


def run_zk_prove(args: argparse.Namespace) -> int:
    from ..watermark import load_key_pair
    from ..zk import CircuitRefused, prove_watermark, save_proof

    mk, vk = load_key_pair(args.key)
    model, info = _model(args.model_dir, args.trust_model_code)
    try:
        run = prove_watermark(
            model, mk, vk, test_data=_test_data(args, info), slots=args.slots, threshold=args.threshold
        )
    except CircuitRefused as exc:
        print(f"NOT PROVED: {exc}")
        return 1
    save_proof(args.out, run.proof)
    proof = run.proof
    doc = {
        "out": args.out,
        "hidden": proof.hidden,
        "required": proof.required,
        "classified_as_committed": run.correct,
        "chunks": len(proof.chunks),
        "prove_seconds": round(run.seconds, 1),
        "peak_memory_bytes": run.peak_rss_bytes,
        "proof_bytes": sum(len(c.proof) for c in proof.chunks),
        "quantization": proof.quantization.model_dump(mode="json"),
    }
    if args.json:
        print_json(doc)
        return 0
    print(
        f"proved: at least {proof.required} of {proof.hidden} hidden triggers are classified as committed "
        f"({len(proof.chunks)} proof(s), {doc['proof_bytes']} bytes, {run.seconds:.0f} s); written to {args.out}"
    )
    q = proof.quantization
    print(f"  quantized model agrees with the float model on {percent(q.hidden_triggers.rate)} of the hidden triggers")
    if q.test_set is not None:
        print(f"  and on {percent(q.test_set.rate)} of the {q.dataset} test set")
    print(f"  check with: modeldeed watermark zk-verify {args.model_dir} --public-key {args.key} --proof {args.out}")
    return 0


def run_zk_verify(args: argparse.Namespace) -> int:
    import dataclasses

    from ..watermark import load_verification_key
    from ..zk import load_proof, verify_watermark
    from .watermark_cmd import _key_binding

    vk = load_verification_key(args.public_key)
    proof = load_proof(args.proof)
    binding = _key_binding(args, vk, None)
    model, _info = _model(args.model_dir, args.trust_model_code)
    test = data = None
    if args.data:
        splits = load_data(args)
        test, data = splits.test, (splits.train, splits.test)
    verdict = verify_watermark(model, vk, proof, test_data=test, data=data or ())
    registration = binding.to_json() if binding is not None else None
    if binding is not None and binding.reasons:
        verdict = dataclasses.replace(verdict, accepted=False, reasons=(*verdict.reasons, *binding.reasons))
    verdict = dataclasses.replace(verdict, metrics={**verdict.metrics, "registration": registration})
    if args.json:
        print_json({"model": args.model_dir, **verdict.to_json()})
        return 0 if verdict.accepted else 1
    if verdict.accepted:
        print(
            f"ACCEPTED: the proof shows that at least {verdict.proven} of the {verdict.hidden} hidden triggers are "
            f"classified as committed ({verdict.required} needed, epsilon {verdict.epsilon}); none was revealed"
        )
    else:
        print(f"REJECTED: the proof does not show that {verdict.required} of the {verdict.hidden} hidden triggers are "
              "classified as committed:")  # fmt: skip
    for reason in verdict.reasons:
        print(f"  - {reason}")
    chance = verdict.chance_probability
    print(f"chance that a model which never saw the triggers passes: {chance:.3g}" + _log2(chance))
    if verdict.test_agreement is not None:
        print(f"quantized model agrees with the float model on {percent(verdict.test_agreement.rate)} of the test set")
    else:
        print("quantization agreement on a test set: not checked (pass --data)")
    if binding is not None and binding.sentence():
        print(f"key registration: {binding.sentence()}")
    elif binding is None:
        print("key registration: not checked (pass --receipt and --log-key): this claim is not bound in time")
    return 0 if verdict.accepted else 1


def _log2(p: float) -> str:
    return f" (2^{math.log2(p):.1f})" if p > 0 else ""
