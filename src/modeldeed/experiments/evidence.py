"""What ties a demo report to its artefacts: digests and ids, where they were registered, the software and
machine that produced them, and the exact commands with which anyone re-checks each claim.

Commands are argument lists with "{run}" for the run directory, so a report rendered later (or for a copied
directory) shows them for wherever the run now lies; `expect` is the exit status the command gives when the
run's claim holds (0 accepted, 1 rejected).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

RUN = "{run}"
# Filled in by the demo's registrations (demo_registry): one entry per registered artefact, each with its receipt.
NOT_REGISTERED = {"status": "not registered", "entries": []}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def device_description(machine: dict[str, Any], threads: int) -> str:
    return machine.get("cuda") or f"CPU ({threads} thread{'s' if threads != 1 else ''} of {machine.get('cpu_count')})"


def artefacts(
    run: Path, *, private_key: Any, public_key: Any, proof_id: str, statement: Any, key_seed: int | None
) -> dict[str, Any]:
    """Digests and ids of what the run produced, paths relative to the run directory."""
    return {
        "model": {"path": "model/model.safetensors", "sha256": sha256_file(run / "model" / "model.safetensors")},
        "keys": {
            "private": {"path": "keys/private", "key_id": private_key.key_id, "scheme": private_key.scheme},
            "public": {"path": "keys/public", "key_id": public_key.key_id, "scheme": public_key.scheme},
        },
        "demonstration_keys": key_seed is not None,
        "key_seed": key_seed,
        "proof": {"path": "proof", "proof_id": proof_id},
        "statement": {"path": "statement.json", "statement_id": statement.id},
        "registry": dict(NOT_REGISTERED),
    }


def commands(results: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """The CLI commands that re-check each claim of `results`, with the exit status each gives when it holds."""
    t = ["--threads", str(threads)]
    found: list[dict[str, Any]] = []

    def add(claim: str, argv: list[str] | None, accepted: bool | None, note: str = "") -> None:
        expect = None if accepted is None else (0 if accepted else 1)
        found.append({"claim": claim, "argv": argv, "expect": expect, "note": note})

    wm = results.get("watermark", {})
    if "private" in wm:
        add(
            "watermark, private Verify",
            ["watermark", "verify", f"{RUN}/model", "--key", f"{RUN}/keys/private"],
            wm["private"]["accepted"],
        )
    if "public" in wm:
        add(
            "watermark, public PVerify",
            ["watermark", "pverify", f"{RUN}/model", "--key", f"{RUN}/keys/public"],
            wm["public"]["accepted"],
        )
    proof = results.get("proof", {})
    if "reference" in proof:
        add(
            "proof-of-learning, reference verifier",
            ["pol", "verify", f"{RUN}/proof", "--data", "digits", "--reference", *t],
            proof["reference"]["accepted"],
        )
    registry = results.get("evidence", {}).get("registry") or {}
    entries = registry.get("entries") or []
    log_key = f"{RUN}/{registry['log_key']}" if entries else None
    receipts: list[str] = []
    if any(e["kind"] == "pol-commitment" for e in entries) and any(e["kind"] == "pol-statement" for e in entries):
        receipts = ["--commitment-receipt", f"{RUN}/commitment.receipt.json"]
        receipts += ["--statement-receipt", f"{RUN}/statement.receipt.json", "--log-key", str(log_key)]
    if "hardened" in proof:
        bound = " and its registrations (the challenge from the log's beacon)" if receipts else ""
        add(
            f"proof-of-learning, hardened verifier with the owner's statement{bound}",
            ["pol", "verify", f"{RUN}/proof", "--data", "digits", "--hardened", "--statement", f"{RUN}/statement.json"]
            + receipts
            + list(t),
            proof["hardened"]["accepted"],
        )
    for e in entries:
        add(
            f"registration of the {e['artefact']} (entry {e['log_index']}, {e['registered_at']})",
            [
                "registry",
                "verify",
                f"{RUN}/{e['receipt']}",
                "--log-key",
                str(log_key),
                "--artefact",
                f"{RUN}/{e['path']}",
            ],
            True,
        )
    attacks = [a for a in results.get("attacks", []) if a.get("attack") != "transfer"]
    if attacks:
        removed = any(a["watermark_removed"] for a in attacks)
        epochs = results.get("setting", {}).get("attack_epochs")
        seed = results.get("setting", {}).get("seed", 0)
        argv = [
            "attack",
            "suite",
            f"{RUN}/model",
            "--key",
            f"{RUN}/keys/private",
            "--data",
            "digits",
            "--only",
            ",".join(a["label"] for a in attacks),
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            *t,
            "--out",
            f"{RUN}/audit",
        ]
        add(
            "watermark attacks (exit 1: at least one removed it)",
            argv,
            not removed,
            "transfer is left out: its target, digits relabelled even/odd, is not a dataset the CLI loads by name",
        )
    for s in results.get("spoofs", []):
        path = f"{RUN}/{s['proof']}"
        add(
            f"spoof {s['method']}, reference verifier",
            ["pol", "verify", path, "--data", "digits", "--reference", *t],
            s["reference"]["accepted"],
        )
        if s.get("hardened"):
            add(
                f"spoof {s['method']}, hardened verifier",
                ["pol", "verify", path, "--data", "digits", "--hardened", *t],
                s["hardened"]["accepted"],
            )
    return found
