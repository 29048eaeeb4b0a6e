"""Which circuits exist, how big they are, and their compiled keys in a cache that anyone can rebuild.

A circuit is fixed by the MLP's layer widths and its number of trigger slots; js/circuit.mjs is the one
definition. Compiling it (o1js: Kimchi constraint system, Pickles step and wrap keys) takes minutes, so the
result is cached under $MODELDEED_ZK_CACHE (default ~/.cache/modeldeed/zk), one directory per circuit id =
SHA-256 of the circuit's source, the locked npm dependencies, the widths and the slot count. The verifier
uses only its own cache: the verification key is derived from the circuit, never taken from a prover, and
checked against modeldeed's pins before use (trust.py: a hostile cache cannot make a proof verify).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..errors import ModeldeedError
from ..files import canonical_json, write_json_atomic
from ..schema import Document, Hex64, load_document
from .node import JS_DIR, O1JS_VERSION, run_node
from .trust import key_problem

log = logging.getLogger(__name__)

VK_FORMAT = "modeldeed.zk.circuit-key"
VK_FILE = "circuit_key.json"
CACHE_LAYOUT = b"modeldeed/zk-circuit/v2"  # bump when what a cache entry holds changes
HEADER_FIELDS = 7  # key id (2), model digest (2), threshold, chunk number, challenge seed
PUBLIC_ROWS_PER_VALUE = 7  # Pickles hashes the public input into one value: Poseidon, ~6.5 rows per value
SLOT_CHOICES = (4, 8, 16, 32, 64, 128)
MAX_ROWS = 1 << 16  # o1js proves circuits of up to 2^16 rows
MAX_DIM = 4096
MAX_LAYERS = 6


@dataclass(frozen=True)
class CircuitSpec:
    """An MLP of layer widths `dims` (input, hidden..., classes) checked on `slots` triggers per proof."""

    dims: tuple[int, ...]
    slots: int

    def __post_init__(self) -> None:
        if not 2 <= len(self.dims) <= MAX_LAYERS + 1 or any(not 1 <= d <= MAX_DIM for d in self.dims):
            raise ModeldeedError(
                f"the circuit takes 1 to {MAX_LAYERS} layers of widths 1..{MAX_DIM}, got {list(self.dims)}"
            )
        if self.slots not in SLOT_CHOICES:
            raise ModeldeedError(f"a circuit has one of {list(SLOT_CHOICES)} trigger slots, got {self.slots}")

    @property
    def inputs(self) -> int:
        return self.dims[0]

    @property
    def classes(self) -> int:
        return self.dims[-1]

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.dims[1:-1]

    @property
    def public_size(self) -> int:
        return public_size(self.dims, self.slots)

    @property
    def per_slot(self) -> int:
        return self.inputs + 2 + self.classes + 2 * sum(self.hidden) + self.classes + 1

    @property
    def private_size(self) -> int:
        return 1 + self.slots * self.per_slot

    def estimated_rows(self) -> int:
        return estimate_rows(self.dims, self.slots)

    def circuit_id(self) -> str:
        digest = hashlib.sha256(CACHE_LAYOUT + b"\x00")
        for name in ("circuit.mjs", "package-lock.json"):  # what the keys depend on (main.mjs only drives them)
            data = (JS_DIR / name).read_bytes()
            digest.update(len(data).to_bytes(8, "big") + data)
        digest.update(canonical_json({"dims": list(self.dims), "slots": self.slots}))
        return digest.hexdigest()

    def request(self) -> dict[str, Any]:
        return {"dims": list(self.dims), "slots": self.slots}


def public_size(dims: tuple[int, ...], slots: int) -> int:
    """Header, then per layer the Freivalds vector (one value per input) and scalar, then two values per slot."""
    return HEADER_FIELDS + sum(dims[i - 1] + 1 for i in range(1, len(dims))) + 2 * slots


def estimate_rows(dims: tuple[int, ...], slots: int) -> int:
    """Rows of the circuit, from a fit to o1js's own counts (docs/zk.md), rounded up: no node needed.

    Per slot: two rows per input bit (booleanity, packing, Freivalds), eight per hidden unit (sign, 64-bit
    range check, ReLU, challenge hash) and thirteen per class (logit comparison and range check), plus the
    Poseidon commitment. Once per proof: Pickles hashes the public input (about 6.5 rows per value).
    """
    per_slot = math.ceil(2.1 * dims[0]) + 8 * sum(dims[1:-1]) + 13 * dims[-1] + 62
    return PUBLIC_ROWS_PER_VALUE * public_size(dims, slots) + 100 + slots * per_slot


def mac_estimate_rows(macs_per_trigger: int, parameters: int, triggers: int) -> int:
    """For an architecture the circuit does not support: one row per multiply-add, the way a direct circuit
    would need, plus the weights as public input. Used only to say how far out of reach a model is."""
    return macs_per_trigger * triggers + parameters


def choose_slots(dims: tuple[int, ...], hidden: int) -> int:
    """The smallest slot count that holds every hidden trigger within MAX_ROWS, else the largest that fits."""
    fitting = [s for s in SLOT_CHOICES if estimate_rows(dims, s) <= MAX_ROWS]
    if not fitting:
        raise ModeldeedError(
            f"an MLP of widths {list(dims)} needs about {estimate_rows(dims, SLOT_CHOICES[0])} circuit rows even "
            f"for {SLOT_CHOICES[0]} triggers per proof; o1js proves at most {MAX_ROWS} rows"
        )
    for slots in fitting:
        if slots >= hidden:
            return slots
    return fitting[-1]


def check_size(spec: CircuitSpec) -> None:
    rows = spec.estimated_rows()
    if rows > MAX_ROWS:
        raise ModeldeedError(
            f"the circuit for widths {list(spec.dims)} with {spec.slots} slots needs about {rows} rows; "
            f"o1js proves at most {MAX_ROWS}"
        )


def cache_root() -> Path:
    configured = os.environ.get("MODELDEED_ZK_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modeldeed" / "zk"


class CircuitKey(Document):
    """The verification key of one compiled circuit, as cached (written by modeldeed, read back bounded)."""

    format: Literal["modeldeed.zk.circuit-key"]
    version: Literal[1]
    circuit_id: Hex64
    dims: list[int] = Field(min_length=2, max_length=MAX_LAYERS + 1)
    slots: int
    o1js: str = Field(max_length=32)
    rows: int = Field(ge=1, le=MAX_ROWS)
    vk: str = Field(min_length=1, max_length=1 << 20, pattern=r"^[A-Za-z0-9+/=]+$")
    vk_hash: str = Field(pattern=r"^(0|[1-9][0-9]{0,76})$")
    wrap_domain_log: int = Field(ge=8, le=20)  # Pickles' wrap proof domain, whose Lagrange basis is cached
    compile_seconds: float


def cached_key(spec: CircuitSpec) -> CircuitKey | None:
    """The cached key, or None; a damaged or foreign entry is moved aside (and rebuilt by `setup`)."""
    path = cache_root() / spec.circuit_id() / VK_FILE
    if not path.is_file():
        return None
    try:
        key: CircuitKey | None = load_document(CircuitKey, path, max_bytes=2 << 20)
        problem = "it belongs to another circuit"
    except ModeldeedError as exc:
        key, problem = None, str(exc)
    if key is not None and (key.circuit_id, tuple(key.dims), key.slots) == (spec.circuit_id(), spec.dims, spec.slots):
        untrusted = key_problem(key.circuit_id, key.vk, key.wrap_domain_log, path.parent)
        if untrusted:  # refused, not rebuilt: someone put it there, and the user should know
            raise ModeldeedError(f"{path}: the cached circuit key cannot be used: {untrusted}")
        return key
    aside = path.parent.with_name(f".stale-{path.parent.name[:16]}-{secrets.token_hex(6)}")
    log.warning("ignoring the cached circuit in %s (%s); rebuilding it", path.parent, problem)
    os.rename(path.parent, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return None


def setup(spec: CircuitSpec) -> tuple[CircuitKey, bool]:
    """The circuit's key from the cache, or compiled now (minutes) and cached; True when it was compiled now."""
    check_size(spec)
    key = cached_key(spec)
    if key is not None:
        return key, False
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / spec.circuit_id()
    work = root / f".building-{spec.circuit_id()[:16]}-{secrets.token_hex(6)}"
    log.warning("compiling the zero-knowledge circuit for widths %s, %d slots (minutes, once)", spec.dims, spec.slots)
    try:
        result = run_node("compile", spec.request(), work)
        answer = result.answer
        key = CircuitKey(
            format=VK_FORMAT,
            version=1,
            circuit_id=spec.circuit_id(),
            dims=list(spec.dims),
            slots=spec.slots,
            o1js=O1JS_VERSION,
            rows=int(answer["rows"]),
            vk=str(answer["vk"]),
            vk_hash=str(answer["vk_hash"]),
            wrap_domain_log=int(answer["wrap_domain_log"]),
            compile_seconds=round(result.seconds, 1),
        )
        write_json_atomic(work / VK_FILE, key.model_dump())
        try:
            os.rename(work, final)  # atomic; fails if another process finished first, and then theirs is kept
        except OSError:
            if not (final / VK_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cached = cached_key(spec)
    if cached is None:
        raise ModeldeedError(f"{final}: the compiled circuit was not cached")
    return cached, True


def circuit_dir(spec: CircuitSpec) -> Path:
    return cache_root() / spec.circuit_id()
