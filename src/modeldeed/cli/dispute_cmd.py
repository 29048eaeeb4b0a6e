"""`modeldeed dispute MODEL ...`: judge competing ownership claims; `modeldeed claim MODEL ...`: assemble one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from .common import add_data_options, add_trust_option, print_json


def _bits(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must lie in [1, 1024], got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    from ..dispute.claim import MAX_EVIDENCE
    from ..dispute.decide import DEFAULT_SECURITY_BITS, MAX_CLAIMS

    d = commands.add_parser(
        "dispute",
        help="judge competing ownership claims on a model: exit 0 ownership established, 1 not, 2 bad input",
        description="Run every claim's evidence through the real verifiers on MODEL, check its receipts against "
        "the log's key, and give the model to the claim with the earliest valid registration (made by the "
        "claimant itself) before the model's first appearance. Writes judgement.json and judgement.html. See "
        "docs/registry.md, 'Disputes'.",
    )
    d.add_argument("model_dir", metavar="MODEL", help="the disputed model directory")
    add_data_options(d)
    d.add_argument(
        "--claim",
        action="append",
        required=True,
        metavar="CLAIM_DIR",
        help=f"a claim directory from `modeldeed claim` (repeatable, at most {MAX_CLAIMS})",
    )
    d.add_argument("--log-key", required=True, metavar="PUB", help="the transparency log's public key file")
    d.add_argument(
        "--first-seen",
        metavar="TIME",
        help="when the model first appeared (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ), by the judge's own evidence",
    )
    d.add_argument(
        "--model-receipt",
        action="append",
        default=[],
        metavar="RECEIPT.json",
        help="a registration of this very model (kind model, `registry publish MODEL`): it appeared by then "
        "(repeatable; the earliest of these and --first-seen is the first appearance)",
    )
    d.add_argument(
        "--registry",
        metavar="URL",
        help="the log's service, for consistency proofs between receipts, the model's earliest registration and "
        "earlier registrations of a claimed key by others (nothing it says is trusted unchecked)",
    )
    d.add_argument(
        "--security",
        type=_bits,
        default=DEFAULT_SECURITY_BITS,
        metavar="BITS",
        help="a key counts only if a model that never saw it passes with probability at most 2^-BITS "
        f"(default: {DEFAULT_SECURITY_BITS:g})",
    )
    d.add_argument(
        "--reference",
        metavar="MODEL",
        help="a model trained on the data: keys whose triggers it labels as committed far more often than random "
        "labels allow do not count",
    )
    d.add_argument("--out", required=True, metavar="JUDGEMENT_DIR", help="where to write judgement.json and .html")
    d.add_argument("--json", action="store_true", help="print judgement.json")
    add_trust_option(d)
    d.set_defaults(handler=run_dispute)

    c = commands.add_parser(
        "claim",
        help="assemble a signed claim directory for a dispute",
        description="Copy your evidence (a watermark key with its registration receipt, a reveal for public "
        "verification; a proof of learning with its registered statement and commitment) into CLAIM_DIR and "
        "sign claim.json with your submitter identity, the one that registered "
        "the evidence. Hand the directory to the judge of `modeldeed dispute`.",
    )
    c.add_argument("model_dir", metavar="MODEL", help="the model you claim")
    c.add_argument("--identity", required=True, metavar="ID", help="your submitter identity (`registry keygen`)")
    c.add_argument(
        "--watermark",
        action="append",
        default=[],
        metavar="KEYDIR",
        help=f"a watermark key directory (repeatable, at most {MAX_EVIDENCE}); its marking key is included unless "
        "a --reveal of it is given",
    )
    c.add_argument(
        "--receipt",
        action="append",
        default=[],
        metavar="RECEIPT.json",
        help="the key's registration receipt, one per --watermark in order (default: KEYDIR/"
        "verification_key.receipt.json, written by `keygen --registry`)",
    )
    c.add_argument(
        "--reveal",
        action="append",
        default=[],
        metavar="DIR",
        help="a revealed set of a bounded key (matched to its --watermark by key id); checked publicly",
    )
    c.add_argument(
        "--reveal-receipt",
        action="append",
        default=[],
        metavar="RECEIPT.json",
        help="the reveal's receipt, one per --reveal in order (default: DIR/reveal.receipt.json if present)",
    )
    p = c.add_argument_group(
        "proof of learning",
        "a proof of the model's training, checked by the hardened verifier on the disputed model; dated by the "
        "statement's registration (`pol commit --registry`, before training)",
    )
    p.add_argument(
        "--pol-proof",
        metavar="DIR",
        help="a proof directory (`train --proof`), or an opened proof (`pol open` with the commitment's receipt) "
        "for proofs with more files than a claim holds",
    )
    p.add_argument("--pol-statement", metavar="STATEMENT", help="the training statement (`pol commit`'s directory)")
    p.add_argument("--pol-commitment", metavar="FILE", help="the proof commitment (`pol commit-proof --out FILE`)")
    p.add_argument(
        "--pol-receipts",
        nargs=2,
        metavar=("STATEMENT_RECEIPT", "COMMITMENT_RECEIPT"),
        help="the two registration receipts (default: statement.receipt.json next to the statement, "
        "NAME.receipt.json next to the commitment, as `--registry` saves them)",
    )
    c.add_argument("--name", default="", help="what to call you in the judgement (shown, not checked)")
    c.add_argument("--log-key", metavar="PUB", help="check every receipt against the log's public key first")
    c.add_argument("--out", required=True, metavar="CLAIM_DIR", help="a new directory for the claim")
    c.set_defaults(handler=run_claim)


def run_claim(args: argparse.Namespace) -> int:
    from ..dispute import PolSource, WatermarkSource, make_claim
    from ..models.digest import model_digest
    from ..registry import load_identity, load_log_key, load_receipt, verify_receipt
    from ..watermark import load_reveal, load_verification_key

    if args.receipt and len(args.receipt) != len(args.watermark):
        raise ModeldeedError(f"{len(args.receipt)} --receipt for {len(args.watermark)} --watermark: give one each")
    if args.reveal_receipt and len(args.reveal_receipt) != len(args.reveal):
        raise ModeldeedError(f"{len(args.reveal_receipt)} --reveal-receipt for {len(args.reveal)} --reveal")
    identity = load_identity(args.identity)
    digest = model_digest(args.model_dir)
    keys = [load_verification_key(key_dir) for key_dir in args.watermark]
    reveals: dict[int, tuple[str, str | None]] = {}
    for number, reveal_dir in enumerate(args.reveal):
        matches = [i for i, vk in enumerate(keys) if vk.scheme == "bounded" and _reveal_of(reveal_dir, vk, load_reveal)]
        if not matches:
            raise ModeldeedError(f"{reveal_dir}: reveals a set of none of the --watermark keys")
        if matches[0] in reveals:
            raise ModeldeedError(f"{reveal_dir}: a second reveal of one key; a claim checks one reveal per key")
        reveals[matches[0]] = (reveal_dir, args.reveal_receipt[number] if args.reveal_receipt else None)
    sources: list[Any] = [
        WatermarkSource(key_dir, args.receipt[i] if args.receipt else None, *reveals.get(i, (None, None)))
        for i, key_dir in enumerate(args.watermark)
    ]
    if args.log_key:
        log_key = load_log_key(args.log_key)
        from ..watermark.registration import KEY_RECEIPT_FILE

        for source in sources:
            path = source.receipt or str(Path(source.key_dir) / KEY_RECEIPT_FILE)
            verdict = verify_receipt(load_receipt(path), log_key)
            if not verdict.valid:
                raise ModeldeedError(f"{path}: the receipt does not verify: " + "; ".join(verdict.reasons))
        if args.pol_receipts:
            for path in args.pol_receipts:
                verdict = verify_receipt(load_receipt(path), log_key)
                if not verdict.valid:
                    raise ModeldeedError(f"{path}: the receipt does not verify: " + "; ".join(verdict.reasons))
    pol = (args.pol_proof, args.pol_statement, args.pol_commitment)
    if any(pol) or args.pol_receipts:
        if not all(pol):
            raise ModeldeedError("PoL evidence needs --pol-proof, --pol-statement and --pol-commitment together")
        receipts = args.pol_receipts or (None, None)
        sources.append(PolSource(args.pol_proof, args.pol_statement, args.pol_commitment, *receipts))
    if not sources:
        raise ModeldeedError("a claim needs evidence: --watermark KEYDIR and/or --pol-proof DIR ...")
    out = make_claim(args.out, identity, digest, sources, name=args.name)
    print(f"claim written to {out} ({len(sources)} item(s) of evidence), signed by {identity.fingerprint}")
    print(f"  model digest: {digest}")
    print(f"  hand it to the judge: modeldeed dispute {args.model_dir} --claim {out} ...")
    return 0


def _reveal_of(reveal_dir: str, vk: Any, load_reveal: Any) -> bool:
    try:
        return load_reveal(reveal_dir, vk).key_id == vk.key_id
    except ModeldeedError:
        return False


def run_dispute(args: argparse.Namespace) -> int:
    from ..dispute import decide, write_judgement
    from ..registry import RegistryClient, load_log_key, load_receipt
    from ..watermark import parse_moment

    log_key = load_log_key(args.log_key)
    first_seen = parse_moment(args.first_seen) if args.first_seen else None
    receipts = [(path, load_receipt(path)) for path in args.model_receipt]
    judgement = decide(
        args.model_dir,
        args.claim,
        data_name=args.data,
        data_dir=args.data_dir,
        log_key=log_key,
        first_seen=first_seen,
        model_receipts=receipts,
        registry=RegistryClient(args.registry) if args.registry else None,
        min_security_bits=args.security,
        reference_dir=args.reference,
        trust_code=args.trust_model_code,
    )
    document = write_judgement(args.out, judgement)
    if args.json:
        print_json(document.model_dump(mode="json"))
        return 0 if document.established else 1
    print(document.verdict)
    for claim in document.claims:
        who = claim.claimant.fingerprint if claim.claimant else "(unreadable claim)"
        print(f"claim {claim.number} ({claim.path}, claimant {who}): {'COUNTS' if claim.counts else 'does not count'}")
        for reason in claim.reasons:
            print(f"  - {reason}")
        for item in claim.evidence:
            print(f"  evidence {item.number}: {item.summary}")
            for reason in item.reasons:
                print(f"    - {reason}")
    print(f"judgement: {Path(args.out) / 'judgement.json'} and judgement.html")
    return 0 if document.established else 1
