"""The trained model out of a complete proof: its last checkpoint holds the model's exact state.

Why: a run whose proof was complete but whose model directory was never written (a full disk while saving
it, an interruption between the two) would otherwise lose the training. The proof's last checkpoint is the
state after the last step, so the model it holds is bit for bit the one `train` would have saved. The
checkpoint is read like a verifier reads it (hash-checked against proof.json, decoded only within the
architecture's declared tensors), so a damaged or tampered proof yields an error, never a wrong model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import FormatError, file_error
from ..models import load_state_exactly
from .proof import PROOF_FILE, Proof, load_proof
from .replay import build_checked_model, optimizer_keys
from .source import FullSource
from .state import model_tensors, tensor_rule


@dataclass(frozen=True)
class ExtractedModel:
    model: nn.Module
    proof: Proof
    proof_id: str


def model_from_proof(directory: str | Path, *, trust_code: bool = False) -> ExtractedModel:
    """The model at the proof's last step, rebuilt from its last checkpoint (FormatError if the proof is not
    complete or the checkpoint does not match proof.json)."""
    directory = Path(directory)
    proof, proof_id = load_proof(directory)
    if not proof.checkpoints or proof.checkpoints[-1].step != proof.total_steps:
        raise file_error(FormatError, directory / PROOF_FILE, "has no checkpoint after its last step")
    model = build_checked_model(proof.header.spec, trust_code=trust_code, source=directory / PROOF_FILE)
    source = FullSource(directory, proof, trust_code=trust_code)
    source.set_rule(tensor_rule(model, proof.header.trained_parameters, optimizer_keys(proof.header)))
    last = proof.checkpoints[-1]
    tensors = model_tensors(source.checkpoint(len(proof.checkpoints) - 1))
    load_state_exactly(model, {k: v.clone() for k, v in tensors.items()}, directory / last.file)
    return ExtractedModel(model.eval(), proof, proof_id)


__all__ = ["ExtractedModel", "model_from_proof"]
