"""The demo's registrations: its keys, statement, proof commitment and model on a log of its own, in time.

The demo starts a loopback registry over RUN/registry/registry.db (`registry.local_registry`), makes the owner a
submitter identity (RUN/registry/identity) and registers each artefact at the moment an owner would: the
watermark keys right after keygen and the training statement before training starts; the proof commitment
and the model once training is done. Each receipt is checked against the log's key before it is saved next
to its artefact, and each registration becomes one row of the report's evidence block
(`results["evidence"]["registry"]["entries"]`). The registry is stopped when the demo's run ends.

What these registrations prove in the demo: the order and the log's times at which these digests were
registered by the demo's identity, on a log that the demo itself runs; a log one runs oneself convinces no one
else (docs/registry.md): a shared log run by someone else is what a real owner registers with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..registry import Identity, save_identity, save_receipt, verify_receipt
from ..registry.local import LocalRegistry

REGISTRY_DIR = "registry"


class DemoRegistrar:
    """Registers the demo's artefacts on its local log and keeps one row per registration for the report."""

    def __init__(self, run: Path, local: LocalRegistry) -> None:
        self.run = run
        self.local = local
        self.identity = Identity.generate()
        save_identity(run / REGISTRY_DIR / "identity", self.identity)
        self.entries: list[dict[str, Any]] = []
        self.seconds = 0.0

    def register(self, artefact: str, kind: str, digest: str, path: str, receipt: str) -> Path:
        """Register (kind, digest) of the artefact at RUN/`path`, check the receipt with the log's key, save it at
        RUN/`receipt`; return where it was saved."""
        started = time.perf_counter()
        submitted = self.local.client.register(self.identity, kind, digest)
        entry = submitted.receipt.entry
        verdict = verify_receipt(submitted.receipt, self.local.log_key)
        if not verdict.valid or (entry.kind, entry.digest) != (kind, digest):
            raise RuntimeError(f"the demo's log returned a receipt that does not verify: {verdict.reasons}")
        saved = self.run / receipt
        save_receipt(saved, submitted.receipt)
        self.entries.append(
            {
                "artefact": artefact,
                "kind": kind,
                "digest": digest,
                "log_index": entry.index,
                "registered_at": entry.integrated_time,
                "receipt": receipt,
                "path": path,
            }
        )
        self.seconds += time.perf_counter() - started
        return saved

    def evidence(self) -> dict[str, Any]:
        """The report's `evidence.registry` block."""
        return {
            "status": "registered on the demo's own loopback log",
            "log": self.local.log_key.name,
            "log_key": f"{REGISTRY_DIR}/{self.local.public_key_file.name}",
            "submitter": self.identity.fingerprint,
            "entries": list(self.entries),
            "seconds": round(self.seconds, 3),
        }
