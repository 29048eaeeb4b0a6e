"""The `--registry URL --identity ID --log-key PUB` options of the commands that register what they make.

`watermark keygen/pkeygen/reveal`, `pol commit` and `pol commit-proof` register their artefact right after
writing it and save the receipt next to it; the registration is checked against the log's key when one is
given, and a log that cannot be reached leaves the artefact written and says how to register it later.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError


def registry_options(p: argparse.ArgumentParser, what: str, where: str) -> None:
    p.add_argument(
        "--registry",
        metavar="URL",
        help=f"register {what} on this transparency log right after writing it, and save the receipt ({where})",
    )
    p.add_argument("--identity", metavar="ID", help="with --registry: your submitter identity (`registry keygen`)")
    p.add_argument(
        "--log-key", metavar="PUB", help="with --registry: check the log's receipt against its public key before saving"
    )


def registrar(args: argparse.Namespace) -> Any:
    """(client, identity, log key or None) for --registry, loaded before anything is made; None without it."""
    if not args.registry:
        if args.identity or args.log_key:
            raise ModeldeedError("--identity and --log-key belong to --registry URL")
        return None
    if not args.identity:
        raise ModeldeedError("--registry needs --identity ID (make one with `modeldeed registry keygen --out ID`)")
    from ..registry import RegistryClient, load_identity, load_log_key

    client = RegistryClient(args.registry)
    return client, load_identity(args.identity), load_log_key(args.log_key) if args.log_key else None


def register_with(registrar: Any, register: Any, receipt_path: Path, what: str, how: str) -> dict[str, Any]:
    """Register with `register(client, identity)`, check the receipt (with --log-key) and save it.

    Returns what to report; `problems` is non-empty when the log's receipt does not verify (nothing saved).
    """
    from ..registry import save_receipt, verify_receipt

    client, identity, log_key = registrar
    try:
        submitted = register(client, identity)
    except ModeldeedError as exc:
        raise ModeldeedError(f"{what} was written but NOT registered: {exc} (register it later: {how})") from None
    entry = submitted.receipt.entry
    problems = list(verify_receipt(submitted.receipt, log_key).reasons) if log_key is not None else []
    if not problems:
        save_receipt(receipt_path, submitted.receipt)
    return {
        "kind": entry.kind,
        "digest": entry.digest,
        "index": entry.index,
        "integrated_time": entry.integrated_time,
        "submitter_fingerprint": identity.fingerprint,
        "new": submitted.new,
        "receipt": str(receipt_path) if not problems else None,
        "checked_with_log_key": log_key is not None,
        "problems": problems,
    }


def print_registration(registration: dict[str, Any], what: str) -> int:
    if registration["problems"]:
        print(f"the log's receipt for {what} does NOT verify (nothing saved):", *registration["problems"], sep="\n  ")
        return 1
    state = "registered" if registration["new"] else "already registered (the earlier entry counts)"
    print(
        f"{state}: {what} as entry {registration['index']} at {registration['integrated_time']} (UTC, the log's "
        f"clock) by submitter {registration['submitter_fingerprint']}"
    )
    print(f"  receipt: {registration['receipt']}")
    return 0


def register_digest(kind: str, digest: str) -> Any:
    """A `register(client, identity)` for `register_with` that registers (kind, digest) and checks the answer."""

    def register(client: Any, identity: Any) -> Any:
        submitted = client.register(identity, kind, digest)
        entry = submitted.receipt.entry
        if (entry.kind, entry.digest, entry.submitter_key) != (kind, digest, identity.public_key):
            raise ModeldeedError(f"{client.base_url}: the log answered with a receipt for another entry")
        return submitted

    return register


def receipt_path_for(document: str | Path) -> Path:
    """Where an artefact's receipt goes: next to it, `NAME.receipt.json` for `NAME.json`."""
    document = Path(document)
    return document.with_name(document.stem + ".receipt.json")
