"""The verifier's trust anchor for the circuit cache: which cached bytes node may use when it verifies.

Why: the cache holds the circuit's verification key, the reference string (SRS) and the Lagrange basis that
the verifier commits the public input with. Whoever can write that directory (a shared cache, one copied from
a prover, a restored CI cache) could put there the key of a circuit that accepts everything, or a reference
string whose discrete logarithms they know, and then every proof would verify. So the verifier never hands
node the cache directory itself. It reads the few files verification needs (regular files, bounded), checks
them against SHA-256 digests pinned in modeldeed's source (pins.json; each is a deterministic output of the
pinned o1js), and writes exactly the checked bytes into a fresh private directory that node reads. A file
that is missing or does not match is left out, and node recomputes it (slower, still sound). The
verification key must match its pin; the key of a circuit modeldeed does not pin (other widths) is used
only if the current user owns its cache entry and nobody else can write it, and the verdict says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ModeldeedError
from ..files import read_regular_file

log = logging.getLogger(__name__)

PINS_FILE = Path(__file__).resolve().parent / "pins.json"


@cache
def pins() -> dict[str, Any]:
    """modeldeed's own pins (part of its source, not user input)."""
    doc = json.loads(PINS_FILE.read_text("utf-8"))
    return {"files": dict(doc["files"]), "circuits": dict(doc["circuits"])}


def vk_sha256(vk: str) -> str:
    return hashlib.sha256(vk.encode("ascii")).hexdigest()


def key_problem(circuit_id: str, vk: str, wrap_domain_log: int, entry: Path) -> str | None:
    """Why a cached verification key may not be used (None when it may): a pin it misses, or an entry that
    someone other than the current user could have written."""
    pin = pins()["circuits"].get(circuit_id)
    if pin is not None:
        if vk_sha256(vk) != pin["vk_sha256"] or wrap_domain_log != pin["wrap_domain_log"]:
            return "its verification key is not the one modeldeed pins for this circuit (pins.json)"
        return None
    for path in (entry, entry / "circuit_key.json"):
        info = os.stat(path, follow_symlinks=False)
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return (
                f"{path} is not pinned and is owned or writable by another user, so its key cannot be trusted; "
                "remove it and run zk-setup"
            )
    return None


def is_pinned(circuit_id: str) -> bool:
    return circuit_id in pins()["circuits"]


@dataclass(frozen=True)
class VerifierFiles:
    """The private directory node verifies from, and which cached files were used or left out."""

    path: Path
    used: tuple[str, ...]
    ignored: tuple[str, ...]  # present in the cache but not matching their pin


@contextmanager
def verifier_directory(entry: Path) -> Iterator[VerifierFiles]:
    """A fresh private directory holding the cache entry's reference string and basis that match their pins."""
    used: list[str] = []
    ignored: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modeldeed-zk-verify-") as tmp:
        out = Path(tmp)
        for name, pin in pins()["files"].items():
            source = entry / name
            if not os.path.lexists(source):
                continue
            try:
                data = read_regular_file(source, max_bytes=int(pin["max_bytes"]), within=entry)
            except ModeldeedError as exc:
                log.warning("not using %s: %s", source, exc)
                ignored.append(name)
                continue
            if hashlib.sha256(data).hexdigest() != pin["sha256"]:
                log.warning("not using %s: it is not the file modeldeed pins; node recomputes it", source)
                ignored.append(name)
                continue
            (out / name).write_bytes(data)
            (out / f"{name}.header").write_text(pin["header"], "utf-8")
            used.append(name)
        yield VerifierFiles(out, tuple(used), tuple(ignored))
