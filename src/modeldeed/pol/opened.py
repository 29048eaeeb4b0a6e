"""Commit and open: a verifier downloads only the challenged part of a proof, checked against the commitment.

The prover publishes (and registers) the small commitment (`pol commit-proof`); the challenge follows from
it; `open_proof` (`pol open`) writes just what the challenged intervals need, each piece with its Merkle path
to the commitment's root:

    OPENED/opened.json                        the header, the commitment, and per challenged interval its step
                                              records; per needed checkpoint its two digests and Merkle path
    OPENED/checkpoints/step-NNNNNNNN.safetensors   the start state of every challenged interval (and, unless
                                              --starts-only, its end state), each a self-contained keyframe
    OPENED/samples/samples-000000.safetensors the stored samples those steps use (with Merkle paths to the
                                              statement's trigger root)

W_0 is never sent (the verifier rebuilds it from the seed and checks its digests against leaf 0), nor is the
last checkpoint (its model digest is compared with the model in dispute). In the recorded environment a
replay's end state is checked by its digests alone, so the end checkpoints are only needed for a verifier
elsewhere. What a verifier downloads grows with the number of challenged intervals, not with T/k.
Format: docs/formats.md ("Opened proof").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from ..errors import FormatError, ModeldeedError, file_error
from ..files import sha256_bytes, write_json_atomic, write_safetensors_atomic
from ..schema import Document, Hex64, load_document
from .challenge import DEFAULT_MIN_FABRICATED, DEFAULT_SOUNDNESS_BITS, Challenge, derive_challenge
from .checkpoints import TensorRule, decode_checkpoint, save_checkpoint
from .commitment import (
    ProofCommitment,
    checkpoint_digests,
    checkpoint_leaf,
    checkpoint_position,
    leaf_count,
    make_commitment,
    steps_leaf,
    steps_position,
)
from .context import CheckResult, VerificationContext, result
from .merkle import MembershipProof, MerkleTree, leaf_hash, verify_membership
from .proof import (
    CHECKPOINT_PATTERN,
    MAX_PROOF_BYTES,
    FileEntry,
    HeaderDoc,
    ProofHeader,
    SampleFileDoc,
    StepColumns,
    StepRecord,
    checkpoint_file,
    checkpoint_steps,
    header_from_doc,
    load_proof,
    samples_file,
    steps_from_doc,
    steps_to_json,
)
from .replay import build_checked_model, optimizer_keys
from .source import FullSource
from .state import state_digests, tensor_rule
from .store import StoredSamples, file_budget, load_sample_file, read_verified, state_budget

log = logging.getLogger(__name__)

OPENED_FORMAT = "modeldeed.pol-opened"
OPENED_FILE = "opened.json"


class PathDoc(Document):
    index: Annotated[int, Field(ge=0)]
    size: Annotated[int, Field(ge=1)]
    siblings: Annotated[list[Hex64], Field(max_length=64)]

    def proof(self) -> MembershipProof:
        return MembershipProof(self.index, self.size, tuple(bytes.fromhex(s) for s in self.siblings))

    @classmethod
    def of(cls, proof: MembershipProof) -> PathDoc:
        return cls(index=proof.index, size=proof.size, siblings=[s.hex() for s in proof.siblings])


class FileDoc(Document):
    file: Annotated[str, Field(pattern=CHECKPOINT_PATTERN)]
    sha256: Hex64
    size: Annotated[int, Field(ge=0, le=1 << 40)]


class OpenedCheckpoint(Document):
    index: Annotated[int, Field(ge=0)]
    step: Annotated[int, Field(ge=0)]
    model_digest: Hex64
    other_digest: Hex64
    path: PathDoc
    file: FileDoc | None = None


class OpenedInterval(Document):
    index: Annotated[int, Field(ge=0)]
    first: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    steps: StepColumns
    path: PathDoc


class OpenedSamples(Document):
    file: SampleFileDoc
    numbers: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    paths: list[PathDoc] | None = None  # Merkle paths to the statement's trigger root, one per number


class OpenedChallenge(Document):
    soundness_bits: Annotated[float, Field(gt=0)]
    min_fabricated: Annotated[float, Field(gt=0, le=1)]
    beacon: Annotated[str, Field(pattern=r"^([0-9a-f]{2}){1,64}$")] | None
    intervals: list[Annotated[int, Field(ge=0)]]


class OpenedDoc(Document):
    format: Literal["modeldeed.pol-opened"] = OPENED_FORMAT
    version: Literal[1] = 1
    header: HeaderDoc
    commitment: ProofCommitment
    challenge: OpenedChallenge
    checkpoints: list[OpenedCheckpoint]
    intervals: list[OpenedInterval]
    samples: OpenedSamples | None = None


# ------------------------------------------------------------------------------------------------ opening


def open_proof(
    directory: str | Path,
    out: str | Path,
    *,
    commitment: ProofCommitment | None = None,
    beacon: bytes | None = None,
    soundness_bits: float = DEFAULT_SOUNDNESS_BITS,
    min_fabricated: float = DEFAULT_MIN_FABRICATED,
    ends: bool = True,
    trust_code: bool = False,
) -> tuple[Challenge, int]:
    """Open the proof in `directory` for its challenge into `out`; return the challenge and the bytes written."""
    directory, out = Path(directory), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ModeldeedError(f"{out}: already exists and is not empty; choose a new directory")
    proof, _ = load_proof(directory)
    if [c.step for c in proof.checkpoints] != checkpoint_steps(proof.total_steps, proof.header.checkpoint_every):
        raise file_error(FormatError, directory / "proof.json", "checkpoints are not at steps 0, k, 2k, ... and T")
    source = FullSource(directory, proof, trust_code=trust_code)
    model = build_checked_model(proof.header.spec, trust_code=trust_code, source=directory / "proof.json")
    source.set_rule(tensor_rule(model, proof.header.trained_parameters, optimizer_keys(proof.header)))
    digests = checkpoint_digests(source.store)
    mine, tree = make_commitment(proof, digests)
    if commitment is not None and commitment.to_json() != mine.to_json():
        raise ModeldeedError(f"{directory}: the proof does not match the commitment (root {commitment.root[:16]}...)")
    challenge = derive_challenge(
        bytes.fromhex(mine.root),
        mine.intervals,
        soundness_bits=soundness_bits,
        min_fabricated=min_fabricated,
        beacon=beacon,
    )
    last = mine.intervals
    leaves = {0, last} | {i for i in challenge.intervals} | {i + 1 for i in challenge.intervals}
    files = {i for i in challenge.intervals if i > 0} | (
        {i + 1 for i in challenge.intervals if i + 1 < last} if ends else set()
    )
    written = 0
    checkpoints = []
    for index in sorted(leaves):
        step = proof.checkpoints[index].step
        file = None
        if index in files:
            data = save_checkpoint(out / checkpoint_file(step), step, source.checkpoint(index))
            file = FileDoc(file=checkpoint_file(step), sha256=sha256_bytes(data), size=len(data))
            written += len(data)
        model_digest, other_digest = digests[index]
        checkpoints.append(
            OpenedCheckpoint(
                index=index,
                step=step,
                model_digest=model_digest.hex(),
                other_digest=other_digest.hex(),
                path=PathDoc.of(tree.prove(checkpoint_position(index))),
                file=file,
            )
        )
    intervals, used = [], set()
    for index in challenge.intervals:
        first, end = proof.checkpoints[index].step, proof.checkpoints[index + 1].step
        records = proof.steps[first:end]
        used.update(n for r in records for n in r.stored)
        intervals.append(
            OpenedInterval(
                index=index,
                first=first,
                end=end,
                steps=StepColumns.model_validate(steps_to_json(records)),
                path=PathDoc.of(tree.prove(steps_position(index))),
            )
        )
    samples_doc = None
    if used:
        samples_doc, size = write_samples(out, source, sorted(used))
        written += size
    doc = OpenedDoc(
        header=HeaderDoc.model_validate(proof.header.to_json()),
        commitment=mine,
        challenge=OpenedChallenge(
            soundness_bits=soundness_bits,
            min_fabricated=min_fabricated,
            beacon=None if beacon is None else beacon.hex(),
            intervals=list(challenge.intervals),
        ),
        checkpoints=checkpoints,
        intervals=intervals,
        samples=samples_doc,
    )
    write_json_atomic(out / OPENED_FILE, doc.model_dump(mode="json"))
    written += (out / OPENED_FILE).stat().st_size
    log.info("opened %d of %d intervals of %s into %s (%d bytes)", challenge.count, last, directory, out, written)
    return challenge, written


def write_samples(out: Path, source: FullSource, numbers: list[int]) -> tuple[OpenedSamples, int]:
    samples = source.samples()
    assert samples is not None
    rows = torch.tensor(numbers, dtype=torch.int64)
    data = write_safetensors_atomic(out / samples_file(0), {"x": samples.x[rows], "y": samples.y[rows]})
    paths = None
    carried = source.header.statement
    triggers = carried.statement.triggers if carried is not None else None
    if triggers is not None and len(samples.y) >= triggers.count:
        tree = MerkleTree.from_samples(samples.x[: triggers.count], samples.y[: triggers.count])
        paths = [
            PathDoc.of(tree.prove(n)) if n < triggers.count else PathDoc(index=n, size=triggers.count, siblings=[])
            for n in numbers
        ]
    entry = SampleFileDoc(file=samples_file(0), sha256=sha256_bytes(data), size=len(data), count=len(numbers))
    return OpenedSamples(file=entry, numbers=numbers, paths=paths), len(data)


# ------------------------------------------------------------------------------------------------ reading


class OpenedSource:
    """The opened part of a proof, read through `pol.source.ProofSource`'s interface."""

    opened = True

    def __init__(self, directory: Path, doc: OpenedDoc, header: ProofHeader, trust_code: bool = False) -> None:
        self.directory = directory
        self.trust_code = trust_code
        self._budget: int | None = None
        self.doc = doc
        self.header = header
        self.commitment = doc.commitment
        self.total_steps = doc.commitment.total_steps
        self._steps = checkpoint_steps(self.total_steps, doc.commitment.checkpoint_every)
        self.allowed: TensorRule | None = None
        self._records: dict[int, StepRecord] = {}
        for interval in doc.intervals:
            for i, record in enumerate(steps_from_doc(interval.steps, header.dataset.size, directory / OPENED_FILE)):
                self._records[interval.first + i] = record
        self._leaves = {c.index: c for c in doc.checkpoints}
        self._cache: dict[int, dict[str, torch.Tensor]] = {}
        self._samples: StoredSamples | None = None

    @property
    def checkpoint_steps(self) -> list[int]:
        return self._steps

    def records(self) -> Iterator[tuple[int, StepRecord]]:
        return iter(sorted(self._records.items()))

    def record(self, step: int) -> StepRecord:
        try:
            return self._records[step]
        except KeyError:
            raise file_error(FormatError, self.directory / OPENED_FILE, f"step {step} is not opened") from None

    def has_record(self, step: int) -> bool:
        return step in self._records

    def has_checkpoint(self, index: int) -> bool:
        leaf = self._leaves.get(index)
        return leaf is not None and leaf.file is not None

    def checkpoint(self, index: int) -> dict[str, torch.Tensor]:
        if index in self._cache:
            return self._cache[index]
        leaf = self._leaves.get(index)
        if leaf is None or leaf.file is None:
            raise file_error(FormatError, self.directory / OPENED_FILE, f"checkpoint {index} is not opened")
        entry = FileEntry(leaf.file.file, leaf.file.sha256, leaf.file.size)
        if self._budget is None:
            self._budget = state_budget(self.header, trust_code=self.trust_code)
        data = read_verified(self.directory, entry, file_budget(self._budget))
        tensors = decode_checkpoint(
            data, self.directory / entry.file, leaf.step, None, None, self.allowed, self._budget
        )
        self._cache[index] = tensors
        return tensors

    def digests_of(self, index: int) -> tuple[bytes, bytes]:
        leaf = self._leaves.get(index)
        if leaf is None:
            raise file_error(FormatError, self.directory / OPENED_FILE, f"the leaf of checkpoint {index} is not opened")
        return bytes.fromhex(leaf.model_digest), bytes.fromhex(leaf.other_digest)

    def samples(self) -> StoredSamples | None:
        opened = self.doc.samples
        if opened is None or self._samples is not None:
            return self._samples
        info = self.header.dataset
        entry = FileEntry(opened.file.file, opened.file.sha256, opened.file.size)
        x, y = load_sample_file(self.directory, entry, opened.file.count, info.input_shape, info.num_classes)
        self._samples = StoredSamples(x, y, tuple(opened.numbers))
        return self._samples

    def set_rule(self, allowed: TensorRule) -> None:
        self.allowed = allowed

    def trigger_problems(self, triggers: Any) -> list[str]:
        """Every opened stored sample is a committed trigger: a Merkle path at its own number to the trigger root."""
        opened, samples = self.doc.samples, self.samples()
        if opened is None or samples is None:
            return []
        if opened.paths is None or len(opened.paths) != len(opened.numbers):
            return ["the opened stored samples carry no Merkle paths to the committed trigger samples"]
        root = bytes.fromhex(triggers.merkle_root)
        bad = []
        for row, (number, path) in enumerate(zip(opened.numbers, opened.paths)):
            proof = path.proof()
            leaf = leaf_hash(samples.x[row].numpy(), int(samples.y[row]))
            if proof.index != number or proof.size != triggers.count or not verify_membership(root, leaf, proof):
                bad.append(number)
        if bad:
            return [f"stored samples {bad[:5]} are not committed trigger samples (no valid Merkle path)"]
        return []

    def check_integrity(self, ctx: VerificationContext) -> CheckResult:
        """Every opened piece hashes to the commitment's root along its Merkle path; the counts fit the header."""
        from .checks import check_checkpoint_tensors, prepare_model

        doc, header, commitment = self.doc, self.header, self.commitment
        problems = commitment.consistency_problems()
        config = header.config
        total = config.epochs * config.steps_per_epoch(header.dataset.size)
        if commitment.total_steps != total or commitment.checkpoint_every != header.checkpoint_every:
            problems.append(
                f"the commitment's {commitment.total_steps} steps with k = {commitment.checkpoint_every} do not fit "
                f"the header ({total} steps, k = {header.checkpoint_every})"
            )
        if commitment.header_sha256 != header.digest():
            problems.append("the header is not the one the commitment binds (header SHA-256 differs)")
        carried = header.statement.statement.id if header.statement is not None else None
        if commitment.statement_id != carried:
            problems.append("the commitment names another training statement than the header carries")
        if problems:
            return result("integrity", problems)
        prepare_model(ctx)
        root, size, last = bytes.fromhex(commitment.root), leaf_count(commitment.intervals), commitment.intervals
        for leaf in doc.checkpoints:
            if leaf.index > last or leaf.step != self._steps[leaf.index]:
                problems.append(f"checkpoint {leaf.index} at step {leaf.step} is not one of the proof's")
                continue
            path = leaf.path.proof()
            digest = checkpoint_leaf(
                leaf.index, leaf.step, bytes.fromhex(leaf.model_digest), bytes.fromhex(leaf.other_digest)
            )
            if (
                path.index != checkpoint_position(leaf.index)
                or path.size != size
                or not verify_membership(root, digest, path)
            ):
                problems.append(f"checkpoint {leaf.index}: its Merkle path does not lead to the commitment's root")
                continue
            if leaf.file is not None:
                tensors = self.checkpoint(leaf.index)
                if state_digests(tensors) != self.digests_of(leaf.index):
                    problems.append(f"{leaf.file.file}: its tensors do not have the committed digests")
                else:
                    check_checkpoint_tensors(ctx, leaf.index, tensors)
        for interval in doc.intervals:
            if interval.index >= last or (interval.first, interval.end) != tuple(
                self._steps[interval.index : interval.index + 2]
            ):
                problems.append(
                    f"interval {interval.index} (steps {interval.first}-{interval.end}) is not one of the proof's"
                )
                continue
            records = [self._records[s] for s in range(interval.first, interval.end)]
            path = interval.path.proof()
            digest = steps_leaf(interval.index, interval.first, records)
            if (
                path.index != steps_position(interval.index)
                or path.size != size
                or not verify_membership(root, digest, path)
            ):
                problems.append(f"interval {interval.index}: its step records' Merkle path does not lead to the root")
        opened = {leaf.index for leaf in doc.checkpoints}
        for interval in doc.intervals:
            needed = {interval.index, interval.index + 1}
            if not needed <= opened:
                problems.append(f"interval {interval.index}: the leaves of its checkpoints are not opened")
            if interval.index > 0 and not self.has_checkpoint(interval.index):
                problems.append(f"interval {interval.index}: its start checkpoint is not opened")
        if not {0, last} <= opened:
            problems.append("the leaves of W_0 and of the last checkpoint are not opened")
        self.samples()  # hash-checks and validates the opened stored samples
        used = {n for _, r in self.records() for n in r.stored}
        if used - set(doc.samples.numbers if doc.samples else ()):
            problems.append(f"stored samples {sorted(used)[:5]} are used but not opened")
        return result("integrity", problems)


def load_opened(directory: str | Path, *, trust_code: bool = False) -> tuple[OpenedSource, str]:
    """Read an opened proof; its id is the commitment's."""
    directory = Path(directory)
    path = directory / OPENED_FILE
    doc = load_document(OpenedDoc, path, within=directory, max_bytes=MAX_PROOF_BYTES)
    header = header_from_doc(doc.header, path)
    seen = set()
    for interval in doc.intervals:
        if interval.index in seen or len(interval.steps.indices) != interval.end - interval.first:
            raise file_error(
                FormatError, path, f"interval {interval.index} is opened twice or does not hold its end - first steps"
            )
        seen.add(interval.index)
    numbers = doc.samples.numbers if doc.samples else []
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise file_error(FormatError, path, "field 'samples.numbers' must increase strictly")
    if doc.samples is not None and doc.samples.file.count != len(numbers):
        raise file_error(FormatError, path, "field 'samples.file.count' is not the number of opened samples")
    return OpenedSource(directory, doc, header, trust_code), doc.commitment.id


def opened_bytes(directory: str | Path) -> int:
    """Bytes on disk of an opened (or full) proof directory: what a verifier downloads."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


__all__ = ["OPENED_FILE", "OpenedDoc", "OpenedSource", "load_opened", "open_proof", "opened_bytes"]
