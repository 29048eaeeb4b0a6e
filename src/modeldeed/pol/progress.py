"""Training progress bound in time: a hash chain over the checkpoints, registered on the log as training goes.

A proof commitment registered after training shows that the training was finished by then; it says nothing
about when each part was done. With `train --proof DIR --register-every N --registry URL --identity ID`, the
recorder registers one link of a chain (kind `pol-progress`) for W_0 before the first step, then one every N
checkpoints and one for the rest at the end:

    link_0 = SHA-256("modeldeed/pol-progress/v1" ‖ 0x00 ‖ start ‖ u64be(first) ‖ u64be(count) ‖ leaf_first ‖ ...)
    link_j = SHA-256("modeldeed/pol-progress/v1" ‖ 0x00 ‖ link_{j-1} ‖ u64be(first) ‖ u64be(count) ‖ leaves ...)

where `start` is the statement id (32 bytes; 32 zero bytes without a statement), `first` the index of the
link's first checkpoint, `count` how many it covers, and each leaf the checkpoint's leaf of the proof
commitment (`commitment.checkpoint_leaf`: index, step and the digests of the whole training state). The chain
and its receipts go into DIR/progress/ (`progress.json`, `link-NNNNNN.receipt.json`). A registered link proves
that these exact checkpoints existed at its registration time: a prover who fabricated a proof later (a spoof
made after seeing the model) cannot have registered the links of its checkpoints in the past.

The verifier (`pol verify ... --log-key`) recomputes every link from the proof's own checkpoints, checks each
receipt against the recomputed link (kind, digest, the log's key), and rejects a proof whose checkpoints
disagree with a registered link. A link the log never registered (the registry was unreachable) is reported
as missing; its checkpoints are still covered by the next registered link, which chains over it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ..crypto import tagged_digest
from ..errors import FormatError, file_error
from ..files import write_json_atomic
from ..registry import (
    Identity,
    Receipt,
    Registration,
    RegistryClient,
    VerifierKey,
    check_registration,
    save_receipt,
)
from ..registry.client import RegistryError
from ..registry.receipt import MAX_RECEIPT_BYTES
from ..schema import Document, Hex64, NonNegative, Positive, load_document
from ..training import Batch, Hook, TrainState
from .commitment import checkpoint_leaf
from .state import state_digests

log = logging.getLogger(__name__)

PROGRESS_KIND = "pol-progress"
PROGRESS_TAG = b"modeldeed/pol-progress/v1"
PROGRESS_DIR = "progress"
PROGRESS_FILE = "progress.json"
MAX_LINKS = 100_000
MAX_PROGRESS_BYTES = 32 << 20


def link_digest(previous: bytes, first: int, leaves: Sequence[bytes]) -> bytes:
    """One link of the chain: the previous link (or the start), the first checkpoint's index, the leaves."""
    body = previous + first.to_bytes(8, "big") + len(leaves).to_bytes(8, "big") + b"".join(leaves)
    return tagged_digest(PROGRESS_TAG, body)


def chain_start(statement_id: str | None) -> bytes:
    return bytes.fromhex(statement_id) if statement_id else bytes(32)


class ProgressLink(Document):
    first: NonNegative  # index of the first checkpoint the link covers
    count: Positive
    digest: Hex64
    receipt: str | None  # file name in progress/, None when the registration failed


class ProgressDocument(Document):
    format: Literal["modeldeed.pol-progress"] = "modeldeed.pol-progress"
    version: Literal[1] = 1
    statement_id: Hex64 | None
    links: Annotated[list[ProgressLink], Field(max_length=MAX_LINKS)]


def receipt_name(number: int) -> str:
    return f"link-{number:06d}.receipt.json"


class ProgressRegistrar(Hook):
    """A training hook: every `every` checkpoints (and at the end), register the next link of the chain.

    It computes each checkpoint's leaf from the training state itself (the same tensors the recorder saves, at
    the same steps: step 0, every k steps, the last step), so it does not depend on the recorder's internals.
    A registry that cannot be reached costs a warning, never the training: the link stays in progress.json
    without a receipt and is reported as missing.
    """

    def __init__(
        self,
        directory: str | Path,
        client: RegistryClient,
        identity: Identity,
        *,
        checkpoint_every: int,
        every: int,
        statement_id: str | None,
        log_key: VerifierKey | None = None,
    ) -> None:
        self.directory = Path(directory) / PROGRESS_DIR
        self.client = client
        self.identity = identity
        self.checkpoint_every = checkpoint_every
        self.every = every
        self.log_key = log_key
        self.document = ProgressDocument(statement_id=statement_id, links=[])
        self.previous = chain_start(statement_id)
        self.pending: list[bytes] = []
        self.index = 0  # the next checkpoint's index
        self.first = 0
        self.missed: list[int] = []
        self._names: list[str] = []

    def on_train_start(self, state: TrainState) -> None:
        from .recorder import optimizer_parameter_names

        if state.step != 0:
            raise FormatError("--register-every cannot continue an interrupted recording (the chain starts at step 0)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._names = optimizer_parameter_names(state.model, state.optimizer)
        self._leaf(state)
        self._register()  # link 0 is W_0 alone: the run's start, registered before its first step

    def on_step_end(self, state: TrainState, batch: Batch, loss: Any) -> None:
        if state.step % self.checkpoint_every == 0 or state.step == state.total_steps:
            self._leaf(state)
            if len(self.pending) >= self.every or state.step == state.total_steps:
                self._register()

    def on_train_end(self, state: TrainState) -> None:
        if self.pending:
            self._register()
        if self.missed:
            log.warning(
                "%d of %d progress links were not registered (links %s): their checkpoints are bound only by the "
                "next registered link", len(self.missed), len(self.document.links), self.missed[:10],
            )  # fmt: skip

    def _leaf(self, state: TrainState) -> None:
        from .recorder import checkpoint_tensors

        tensors = checkpoint_tensors(state, self._names)
        self.pending.append(checkpoint_leaf(self.index, state.step, *state_digests(tensors)))
        self.index += 1

    def _register(self) -> None:
        digest = link_digest(self.previous, self.first, self.pending)
        number = len(self.document.links)
        name: str | None = receipt_name(number)
        try:
            receipt = self.client.register(self.identity, PROGRESS_KIND, digest.hex()).receipt
            if (receipt.entry.kind, receipt.entry.digest) != (PROGRESS_KIND, digest.hex()):
                raise RegistryError(f"{self.client.base_url}: the log answered with a receipt for another entry")
            if self.log_key is not None:
                from ..registry import verify_receipt

                verdict = verify_receipt(receipt, self.log_key)
                if not verdict.valid:
                    raise RegistryError(f"the log's receipt does not verify: {'; '.join(verdict.reasons)}")
            save_receipt(self.directory / str(name), receipt)
        except RegistryError as exc:
            log.warning("progress link %d (checkpoints %d..%d) NOT registered: %s; training continues", number,
                        self.first, self.first + len(self.pending) - 1, exc)  # fmt: skip
            self.missed.append(number)
            name = None
        self.document.links.append(ProgressLink(first=self.first, count=len(self.pending), digest=digest.hex(),
                                                receipt=name))  # fmt: skip
        write_json_atomic(self.directory / PROGRESS_FILE, self.document.model_dump(mode="json"))
        self.previous, self.first, self.pending = digest, self.first + len(self.pending), []


@dataclass
class ProgressCheck:
    """What the registered chain proves about a proof's checkpoints."""

    registrations: list[tuple[int, int, Registration]] = field(default_factory=list)  # (first, count, registration)
    receipts: list[Receipt] = field(default_factory=list)  # the receipts behind `registrations`
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        out = [
            f"checkpoints {first}..{first + count - 1} existed by {reg.time_text} (progress link, entry {reg.index})"
            for first, count, reg in self.registrations
        ]
        if self.missing:
            out.append(f"progress links {self.missing[:10]} were not registered (their checkpoints are bound only by "
                       "a later link)")  # fmt: skip
        return out


def check_progress(
    proof_dir: str | Path, leaves: Sequence[bytes], statement_id: str | None, log_key: VerifierKey
) -> ProgressCheck:
    """Recompute the chain from the proof's checkpoint leaves (in order) and check every registered link."""
    folder = Path(proof_dir) / PROGRESS_DIR
    path = folder / PROGRESS_FILE
    document = load_document(ProgressDocument, path, within=proof_dir, max_bytes=MAX_PROGRESS_BYTES)
    check = ProgressCheck()
    if document.statement_id != statement_id:
        check.problems.append(f"{path}: the chain starts from statement {document.statement_id}, not the proof's "
                              f"{statement_id}")  # fmt: skip
    previous, expected_first = chain_start(document.statement_id), 0
    registered: list[Registration] = []
    for number, link in enumerate(document.links):
        if link.first != expected_first or link.first + link.count > len(leaves):
            last = link.first + link.count - 1
            raise file_error(FormatError, path, f"link {number} covers checkpoints {link.first}..{last}, which do not "
                             f"follow on from {expected_first} within the proof's {len(leaves)}")  # fmt: skip
        digest = link_digest(previous, link.first, leaves[link.first : link.first + link.count]).hex()
        previous, expected_first = bytes.fromhex(digest), link.first + link.count
        if link.receipt is None:
            check.missing.append(number)
            continue
        receipt = load_document(Receipt, _inside(folder, link.receipt, path), within=proof_dir,
                                max_bytes=MAX_RECEIPT_BYTES)  # fmt: skip
        result = check_registration(receipt, log_key, kind=PROGRESS_KIND, digest=digest,
                                    what=f"progress link {number} recomputed from the proof's checkpoints")  # fmt: skip
        if result.registration is None:
            check.problems += [f"progress link {number}: {reason}" for reason in result.reasons]
            continue
        if registered and not registered[-1].precedes(result.registration):
            check.problems.append(f"progress link {number} was registered before link {number - 1}")
        if registered and registered[-1].submitter_key != result.registration.submitter_key:
            check.problems.append(f"progress link {number} was registered by another submitter than link 0")
        registered.append(result.registration)
        check.registrations.append((link.first, link.count, result.registration))
        check.receipts.append(receipt)
    if expected_first != len(leaves) and not check.problems:
        check.missing.append(len(document.links))
    return check


def _inside(folder: Path, name: str, where: Path) -> Path:
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise file_error(FormatError, where, f"receipt name {name[:60]!r} is not a file in {folder}")
    return folder / name


def proof_leaves(proof_dir: str | Path) -> tuple[list[bytes], str | None]:
    """The checkpoint leaves of a full proof (every checkpoint hash-checked and decoded) and its statement id."""
    from .commitment import checkpoint_digests
    from .proof import load_proof
    from .store import ProofStore

    proof, _ = load_proof(proof_dir)
    digests = checkpoint_digests(ProofStore(proof_dir, proof))
    leaves = [checkpoint_leaf(i, c.step, *digests[i]) for i, c in enumerate(proof.checkpoints)]
    statement = proof.header.statement.statement.id if proof.header.statement is not None else None
    return leaves, statement
