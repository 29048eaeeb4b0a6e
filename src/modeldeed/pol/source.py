"""What a check reads a proof through: a whole proof directory, or the opened part of one (`pol.opened`).

Both give the header, the step records they hold, the checkpoints they hold (decoded from hash-checked
bytes), the stored samples, and each checkpoint's digests for the commitment. A check written against this
interface verifies a full proof and an opened one alike; what an opened proof does not hold (the step
records and checkpoints of intervals that were not challenged) is simply not there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch

from .checkpoints import TensorRule
from .proof import Proof, ProofHeader, StepRecord, checkpoint_steps
from .store import ProofStore, StoredSamples


class ProofSource(Protocol):
    directory: Path
    header: ProofHeader
    total_steps: int
    opened: bool

    @property
    def checkpoint_steps(self) -> list[int]: ...

    def records(self) -> Iterator[tuple[int, StepRecord]]: ...

    def record(self, step: int) -> StepRecord: ...

    def has_record(self, step: int) -> bool: ...

    def has_checkpoint(self, index: int) -> bool: ...

    def checkpoint(self, index: int) -> dict[str, torch.Tensor]: ...

    def samples(self) -> StoredSamples | None: ...

    def set_rule(self, allowed: TensorRule) -> None: ...

    def digests_of(self, index: int) -> tuple[bytes, bytes]: ...


class FullSource:
    """A complete proof directory: every step record and every checkpoint."""

    opened = False

    def __init__(self, directory: str | Path, proof: Proof, *, trust_code: bool = False) -> None:
        self.directory = Path(directory)
        self.proof = proof
        self.header = proof.header
        self.total_steps = proof.total_steps
        self.store = ProofStore(self.directory, proof, trust_code=trust_code)
        # set by the integrity check's one pass over every checkpoint:
        self.digests: list[tuple[bytes, bytes]] = []  # (D_model, D_other) per checkpoint
        self.frozen_digests: list[bytes] = []  # D of the parameters that are not trained, per checkpoint
        self.straight_pairs: list[int] = []  # intervals i whose updates and i+1's are one straight line

    @property
    def checkpoint_steps(self) -> list[int]:
        return [c.step for c in self.proof.checkpoints]

    def expected_checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.total_steps, self.header.checkpoint_every)

    def records(self) -> Iterator[tuple[int, StepRecord]]:
        return iter(enumerate(self.proof.steps))

    def record(self, step: int) -> StepRecord:
        return self.proof.steps[step]

    def has_record(self, step: int) -> bool:
        return 0 <= step < self.total_steps

    def has_checkpoint(self, index: int) -> bool:
        return 0 <= index < len(self.proof.checkpoints)

    def checkpoint(self, index: int) -> dict[str, torch.Tensor]:
        return self.store.checkpoint(index)

    def samples(self) -> StoredSamples | None:
        return self.store.samples()

    def set_rule(self, allowed: TensorRule) -> None:
        self.store.allowed = allowed

    def digests_of(self, index: int) -> tuple[bytes, bytes]:
        if index < len(self.digests):
            return self.digests[index]
        from .state import state_digests

        return state_digests(self.checkpoint(index))
