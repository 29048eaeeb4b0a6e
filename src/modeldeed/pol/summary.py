"""`inspect`: what a proof holds, what it costs on disk, and the profile of its update sizes.

The size is compared with the reference implementation's layout: every checkpoint's weights, buffers and
optimizer state as uncompressed tensors (what `torch.save` of the state dicts would hold, minus pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .distances import METRICS, check_metrics
from .intervals import IntervalInfo, update_sizes
from .proof import PROOF_FILE, load_proof
from .state import MODEL_PREFIX, OPTIMIZER_PREFIX
from .store import ProofStore


@dataclass(frozen=True)
class ProofSummary:
    directory: str
    proof_id: str
    architecture: str
    dataset: str
    epochs: int
    steps: int
    steps_per_epoch: int
    checkpoint_every: int
    checkpoints: int
    stored_samples: int
    sizes: dict[str, int]  # bytes on disk: proof_json, checkpoints, samples, total
    reference_bytes: int  # uncompressed weights + buffers + optimizer state, summed over checkpoints
    environment: dict[str, Any] = field(default_factory=dict)
    updates: tuple[IntervalInfo, ...] = ()

    @property
    def size_ratio(self) -> float:
        """Checkpoint bytes on disk / the reference layout's bytes."""
        return self.sizes["checkpoints"] / self.reference_bytes if self.reference_bytes else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "proof_id": self.proof_id,
            "architecture": self.architecture,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "checkpoint_every": self.checkpoint_every,
            "checkpoints": self.checkpoints,
            "stored_samples": self.stored_samples,
            "sizes": dict(self.sizes),
            "reference_bytes": self.reference_bytes,
            "size_ratio": self.size_ratio,
            "environment": dict(self.environment),
            "updates": [u.to_json() for u in self.updates],
        }


def inspect_proof(directory: str | Path, *, metrics: Sequence[str] = METRICS, trust_code: bool = False) -> ProofSummary:
    """Summarise a proof; every checkpoint is hash-checked and decoded (FormatError if any is bad)."""
    directory = Path(directory)
    proof, pid = load_proof(directory)
    store = ProofStore(directory, proof, trust_code=trust_code)
    reference = 0

    def count(index: int, tensors: dict) -> None:  # type: ignore[type-arg]
        nonlocal reference
        reference += sum(
            t.numel() * t.element_size() for k, t in tensors.items() if k.startswith((MODEL_PREFIX, OPTIMIZER_PREFIX))
        )

    config = proof.header.config
    updates = update_sizes(
        store.checkpoint,
        [c.step for c in proof.checkpoints],
        proof.header.trained_parameters,
        config.steps_per_epoch(proof.header.dataset.size),
        check_metrics(metrics),
        count,
    )
    store.samples()
    sizes = {
        "proof_json": (directory / PROOF_FILE).stat().st_size,
        "checkpoints": sum(c.size for c in proof.checkpoints),
        "samples": sum(f.size for f in proof.sample_files),
    }
    sizes["total"] = sum(sizes.values())
    return ProofSummary(
        directory=str(directory),
        proof_id=pid,
        architecture=proof.header.spec.architecture,
        dataset=proof.header.dataset.name,
        epochs=config.epochs,
        steps=proof.total_steps,
        steps_per_epoch=config.steps_per_epoch(proof.header.dataset.size),
        checkpoint_every=proof.header.checkpoint_every,
        checkpoints=len(proof.checkpoints),
        stored_samples=proof.stored_sample_count,
        sizes=sizes,
        reference_bytes=reference,
        environment=proof.header.environment.model_dump(mode="json"),
        updates=tuple(updates),
    )
