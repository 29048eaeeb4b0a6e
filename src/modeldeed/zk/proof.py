"""The proof file: what the owner hands out, read by strangers, so bounded and declared (pydantic).

Only two things in it are evidence: each chunk's proof string and its threshold t_k. Everything else (key id,
model digest, circuit id, widths, the quantization figures) is the prover's description, which the verifier
compares against what it derives itself, to say clearly why a proof does not fit; the verification itself
uses only the verifier's own values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..files import write_json_atomic
from ..schema import Document, Hex64, load_document
from .circuit import MAX_LAYERS, SLOT_CHOICES
from .encoding import FIELD_MODULUS

PROOF_FORMAT = "modeldeed.zk.watermark-proof"
MAX_CHUNKS = 64
MAX_PROOF_CHARS = 256 << 10  # a Pickles proof is about 30 kB of base64
MAX_FILE_BYTES = 8 << 20


class ChunkProof(Document):
    threshold: int = Field(ge=0, le=max(SLOT_CHOICES))
    seed: str = Field(pattern=r"^(0|[1-9][0-9]{0,76})$")  # the challenge seed: Poseidon of the salted claims
    proof: str = Field(min_length=1, max_length=MAX_PROOF_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")

    @field_validator("seed")
    @classmethod
    def _in_field(cls, value: str) -> str:
        if int(value) >= FIELD_MODULUS:
            raise ValueError("is not below the field modulus")
        return value


class AgreementFigures(Document):
    agreeing: int = Field(ge=0)
    total: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)


class Quantization(Document):
    weight_bits: int = Field(ge=2, le=24)
    hidden_triggers: AgreementFigures
    test_set: AgreementFigures | None = None
    dataset: str | None = Field(default=None, max_length=256)


class ZkProof(Document):
    format: Literal["modeldeed.zk.watermark-proof"]
    version: Literal[1]
    key_id: Hex64
    model_digest: Hex64
    circuit_id: Hex64
    o1js: str = Field(max_length=32)
    dims: list[int] = Field(min_length=2, max_length=MAX_LAYERS + 1)
    slots: int = Field(ge=min(SLOT_CHOICES), le=max(SLOT_CHOICES))
    hidden: int = Field(ge=0, le=MAX_CHUNKS * max(SLOT_CHOICES))
    required: int = Field(ge=0)
    chunks: list[ChunkProof] = Field(min_length=1, max_length=MAX_CHUNKS)
    quantization: Quantization
    prove_seconds: float = Field(ge=0)
    created: str = Field(max_length=64)


def save_proof(path: str | Path, proof: ZkProof) -> Path:
    path = Path(path)
    write_json_atomic(path, proof.model_dump(mode="json"))
    return path


def load_proof(path: str | Path) -> ZkProof:
    """A proof file from a stranger: a regular file of at most 8 MiB, strict JSON, every field declared."""
    return load_document(ZkProof, path, max_bytes=MAX_FILE_BYTES)
