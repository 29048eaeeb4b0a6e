"""`modeldeed registry ...`: run a transparency log, register artefacts on it, verify receipts, audit it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ModeldeedError
from ..files import write_json_atomic
from ..registry.entry import KINDS


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "registry",
        help="the time-stamped transparency log: serve it, publish to it, verify receipts, audit it",
        description="A transparency log in the design of Certificate Transparency (RFC 6962/9162): it records "
        "when an artefact's SHA-256 was registered, and hands out receipts that verify offline with the log's "
        "public key. See docs/registry.md.",
    )
    sub = p.add_subparsers(dest="registry_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("init-log", help="make a log's signing key (KEYFILE, 0600) and its public key (KEYFILE.pub)")
    s.add_argument("--out", required=True, metavar="KEYFILE")
    s.add_argument(
        "--origin",
        default="modeldeed.localhost/registry",
        help="the log's name, its checkpoints' first line (no spaces, no '+'; default: %(default)s)",
    )
    s.add_argument("--witness", action="store_true", help="make a witness's cosigning key instead")
    s.add_argument("--force", action="store_true", help="replace an existing key")
    s.set_defaults(handler=run_init_log)

    s = sub.add_parser("serve", help="run the log service (JSON API and the judge's pages)")
    s.add_argument(
        "--db",
        default="sqlite:///registry.db",
        metavar="URL",
        help="sqlite:///FILE (default: %(default)s) or postgresql://user@host/dbname",
    )
    s.add_argument("--log-key", required=True, metavar="KEYFILE", help="from `registry init-log`")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, loopback only)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument(
        "--allow", metavar="FILE", help="accept submissions only from these keys (modeldeed.registry-allow-list)"
    )
    s.add_argument("--batch-size", type=int, default=256, metavar="N", help="entries per batch at most (default: 256)")
    s.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="how long a batch waits for more submissions after its first (default: 5)",
    )
    s.set_defaults(handler=run_serve)

    s = sub.add_parser("keygen", help="make a submitter identity (ID/identity.key, 0600, and ID/identity.json)")
    s.add_argument("--out", required=True, metavar="ID")
    s.add_argument("--force", action="store_true", help="replace an existing identity")
    s.set_defaults(handler=run_keygen)

    s = sub.add_parser("publish", help="register an artefact's digest and save the receipt")
    s.add_argument(
        "artefact",
        metavar="ARTEFACT",
        help="a watermark key directory, a PoL statement or proof, a model directory, or any file",
    )
    s.add_argument("--kind", choices=KINDS, help="what it is (inferred from the artefact where possible)")
    s.add_argument("--registry", required=True, metavar="URL")
    s.add_argument("--identity", required=True, metavar="ID", help="from `registry keygen`")
    s.add_argument("--out", required=True, metavar="RECEIPT.json")
    s.add_argument("--log-key", metavar="PUB", help="verify the receipt against the log's public key before saving")
    s.set_defaults(handler=run_publish)

    s = sub.add_parser("verify", help="verify a receipt offline (exit 0 valid, 1 invalid, 2 bad input)")
    s.add_argument("receipt", metavar="RECEIPT.json")
    s.add_argument("--log-key", required=True, metavar="PUB", help="the log's public key file (KEYFILE.pub)")
    s.add_argument("--artefact", metavar="PATH", help="also check that the receipt registers this artefact")
    s.add_argument("--json", action="store_true", help="print the verdict as JSON")
    s.set_defaults(handler=run_verify)

    s = sub.add_parser("audit", help="check that the log did not rewrite history or show two views")
    s.add_argument("--log-key", required=True, metavar="PUB")
    s.add_argument("--registry", metavar="URL", help="fetch the latest checkpoint and a consistency proof from here")
    s.add_argument("--since", metavar="CHECKPOINT.json", help="a checkpoint saved earlier (by --out)")
    s.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="CHECKPOINT.json",
        help="another checkpoint someone was shown (equivocation check; repeatable)",
    )
    s.add_argument("--out", metavar="NEW_CHECKPOINT.json", help="save the latest checkpoint, once checked")
    s.set_defaults(handler=run_audit)

    s = sub.add_parser("witness", help="cosign the log's latest checkpoint after checking it extends the last one")
    s.add_argument("--registry", required=True, metavar="URL")
    s.add_argument("--log-key", required=True, metavar="PUB")
    s.add_argument("--witness-key", required=True, metavar="KEYFILE", help="from `registry init-log --witness`")
    s.add_argument(
        "--state",
        required=True,
        metavar="CHECKPOINT.json",
        help="the last checkpoint this witness cosigned (read if present, then replaced)",
    )
    s.add_argument("--out", required=True, metavar="COSIGNED.json")
    s.set_defaults(handler=run_witness)


def run_init_log(args: argparse.Namespace) -> int:
    from ..registry.logkey import create_log_key, public_path

    signer = create_log_key(args.out, args.origin, witness=args.witness, force=args.force)
    print(f"signing key: {args.out} (keep it secret)")
    print(f"public key:  {public_path(args.out)}")
    print(f"verifier key: {signer.verifier()}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ..registry.identity import load_allow_list
    from ..registry.log import TransparencyLog
    from ..registry.logkey import load_signer_key
    from ..registry.service import serve
    from ..registry.storage import open_storage

    if not 1 <= args.batch_size <= 10_000 or not 0 <= args.batch_wait_ms <= 1000:
        raise ModeldeedError("--batch-size must be 1..10000 and --batch-wait-ms 0..1000")
    signer = load_signer_key(args.log_key)
    allow = load_allow_list(args.allow) if args.allow else None
    tlog = TransparencyLog(open_storage(args.db), signer)
    print(f"modeldeed registry: log {signer.name} ({tlog.size} entries) on http://{args.host}:{args.port}/",
          file=sys.stderr, flush=True)  # fmt: skip
    serve(tlog, args.host, args.port, allow=allow, batch_size=args.batch_size, batch_wait=args.batch_wait_ms / 1000)
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from ..registry.identity import Identity, save_identity

    identity = Identity.generate()
    save_identity(args.out, identity, force=args.force)
    print(f"identity: {args.out} (identity.key is secret; share identity.json)")
    print(f"public key: {identity.public_key}")
    print(f"fingerprint: {identity.fingerprint}")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from ..registry import RegistryClient, load_identity, load_log_key, save_receipt, verify_receipt
    from .registry_artefacts import artefact_digest

    kind, digest, what = artefact_digest(args.artefact, args.kind)
    identity = load_identity(args.identity)
    submitted = RegistryClient(args.registry).register(identity, kind, digest)
    receipt = submitted.receipt
    if (
        receipt.entry.digest != digest
        or receipt.entry.kind != kind
        or receipt.entry.submitter_key != identity.public_key
    ):
        raise ModeldeedError(f"{args.registry}: the log answered with a receipt for another entry")
    if args.log_key:
        verdict = verify_receipt(receipt, load_log_key(args.log_key))
        if not verdict.valid:
            print("the log's receipt does NOT verify:", *verdict.reasons, sep="\n  ", file=sys.stderr)
            return 1
    save_receipt(args.out, receipt)
    state = "registered" if submitted.new else "already registered (the earlier entry counts)"
    print(f"{state}: {kind} {digest} ({what})")
    print(f"entry {receipt.entry.index}, {receipt.entry.integrated_time} (UTC, the log's clock)")
    print(f"receipt: {args.out}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..registry import load_log_key, load_receipt, registration_beacon, verify_receipt

    receipt = load_receipt(args.receipt)
    verdict = verify_receipt(receipt, load_log_key(args.log_key))
    reasons = list(verdict.reasons)
    if args.artefact:
        from .registry_artefacts import artefact_digest

        kind, digest, what = artefact_digest(args.artefact, receipt.entry.kind)
        if digest != receipt.entry.digest:
            reasons.append(f"artefact: the {what} hashes to {digest}, the receipt registers {receipt.entry.digest}")
    valid = not reasons
    entry = receipt.entry
    if args.json:
        print(json.dumps({"valid": valid, "reasons": reasons, "index": entry.index, "kind": entry.kind,
                          "digest": entry.digest, "submitter_key": entry.submitter_key,
                          "integrated_time": entry.integrated_time, "checkpoint_size": entry.checkpoint_size,
                          "beacon": registration_beacon(receipt).hex() if valid else None}, indent=2))  # fmt: skip
    elif valid:
        print(f"valid: {entry.kind} {entry.digest}")
        print(f"registered as entry {entry.index} at {entry.integrated_time} (UTC, the log's clock)")
        print(f"by submitter key {entry.submitter_key}")
    else:
        print(f"INVALID receipt {args.receipt}:", *reasons, sep="\n  ")
    return 0 if valid else 1


def run_audit(args: argparse.Namespace) -> int:
    from ..registry import RegistryClient, load_checkpoint_document, load_log_key
    from ..registry.audit import audit_checkpoints, equivocation
    from ..registry.checkpoint import CheckpointDocument, open_checkpoint
    from ..registry.note import NoteError

    log_key = load_log_key(args.log_key)

    def opened(path: str, note: str):
        try:
            return open_checkpoint(note, log_key)
        except NoteError as exc:
            raise ModeldeedError(f"{path}: {exc}") from None

    if not args.since and not args.registry:
        raise ModeldeedError("give --since CHECKPOINT.json, --registry URL, or both")
    problems: list[str] = []
    saved = opened(args.since, load_checkpoint_document(args.since).note) if args.since else None
    for path in args.compare:
        other = opened(path, load_checkpoint_document(path).note)
        if saved is not None and equivocation(saved, other):
            problems.append(f"{path}: {equivocation(saved, other)}")
    latest_doc = None
    if args.registry:
        client = RegistryClient(args.registry)
        latest_doc = client.latest_checkpoint()
        latest = opened(args.registry, latest_doc.note)
        if saved is not None:
            proof = client.consistency_proof(saved.size, latest.size) if latest.size >= saved.size else []
            problems.extend(audit_checkpoints(saved, latest, proof))
            if not problems:
                print(f"consistent: the log at size {latest.size} extends the saved checkpoint of size {saved.size}")
        else:
            print(f"latest checkpoint: size {latest.size} (nothing saved to compare with: trust on first use)")
    if problems:
        print("INCONSISTENT log:", *problems, sep="\n  ")
        return 1
    if args.compare and saved is not None:
        print(f"no equivocation among {len(args.compare) + 1} checkpoints of the same size")
    if args.out and latest_doc is not None:
        write_json_atomic(args.out, CheckpointDocument.model_validate(latest_doc).model_dump(mode="json"))
        print(f"saved: {args.out}")
    return 0


def run_witness(args: argparse.Namespace) -> int:
    from ..registry import RegistryClient, load_checkpoint_document, load_log_key
    from ..registry.witness import WitnessRefusal, cosign_latest

    state = load_checkpoint_document(args.state) if Path(args.state).exists() else None
    try:
        cosigned, document = cosign_latest(
            RegistryClient(args.registry), load_log_key(args.log_key), args.witness_key, state
        )
    except WitnessRefusal as exc:
        print(f"NOT cosigned: {exc}")
        return 1
    write_json_atomic(args.out, document.model_dump(mode="json"))
    write_json_atomic(args.state, document.model_dump(mode="json"))
    print(f"cosigned the log's checkpoint of size {cosigned.size}: {args.out}")
    return 0
