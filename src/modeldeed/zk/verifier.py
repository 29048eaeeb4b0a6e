"""Anyone's side: check a zero-knowledge watermark proof against a model and a public key.

What is re-derived, never read from the proof: the hidden indices (e = H(vk)), their Poseidon commitments
(from the key), ε and the required count, the model's integers and digest (from MODEL), the circuit and its
verification key (compiled here, from modeldeed's own source), and so the whole public input. What the proof
file contributes: one proof string and one threshold t_k per chunk. The public half of the key is checked as
`pverify` does (challenge, SHA-256 openings, no copies of data with their true class) plus the opened half's
Poseidon commitments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..watermark import VerificationKey, check_public_key
from ..watermark.security import binomial_tail, log2_fraction
from .circuit import CircuitKey, CircuitSpec, circuit_dir, setup
from .keys import opened_half_problems
from .node import run_node
from .proof import ZkProof
from .quantize import MIN_TEST_AGREEMENT, Agreement, agreement, check_agreement, quantize_mlp
from .statement import challenges, derive_statement
from .support import require_supported
from .trust import is_pinned, verifier_directory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZkVerdict:
    """Accepted or not, why not, and what an acceptance is worth."""

    accepted: bool
    reasons: tuple[str, ...]
    key_id: str
    model_digest: str
    hidden: int
    required: int  # ⌈(1-ε)·h⌉
    proven: int  # Σ t_k: hidden triggers the proofs show classified as committed (a lower bound)
    epsilon: float
    chance_probability: float  # a model that never saw the triggers reaches `required` by luck
    cheating_chance_log2: float | None  # cut-and-choose: a forger with fewer than n bad triggers passing
    test_agreement: Agreement | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "verdict": "accepted" if self.accepted else "rejected",
            "reasons": list(self.reasons),
            "key_id": self.key_id,
            "model_digest": self.model_digest,
            "hidden": self.hidden,
            "required": self.required,
            "proven_at_least": self.proven,
            "epsilon": self.epsilon,
            "chance_probability": self.chance_probability,
            "cheating_chance_log2": self.cheating_chance_log2,
            "test_agreement": self.test_agreement.to_json() if self.test_agreement else None,
            "metrics": dict(self.metrics),
        }


def verify_chunks(
    key: CircuitKey, cases: list[tuple[list[str], str]], spec: CircuitSpec
) -> tuple[list[dict[str, Any]], float]:
    """Verify (public input, proof string) pairs against the circuit's own key, in one node process."""
    request = {
        "vk": key.vk,
        "wrap_domain_log": key.wrap_domain_log,
        "cases": [{"public": p, "proof": s} for p, s in cases],
    }
    with verifier_directory(circuit_dir(spec)) as files:  # only pinned bytes reach node, never the cache itself
        result = run_node("verify", request, files.path)
    if files.ignored:
        log.warning("cached files not matching modeldeed's pins were ignored: %s", ", ".join(files.ignored))
    timing = result.answer.get("seconds") or {}
    load, check = timing.get("load", 0.0), timing.get("verify", 0.0)
    log.info("node verify: %.1f s loading reference strings and bases, %.1f s verifying", load, check)
    answers = result.answer.get("results")
    if not isinstance(answers, list) or len(answers) != len(cases):
        raise ModeldeedError("the o1js verify step returned the wrong number of results")
    return [a if isinstance(a, dict) else {} for a in answers], result.seconds


def verify_watermark(
    model: nn.Module,
    verification_key: VerificationKey,
    proof: ZkProof,
    *,
    test_data: Dataset | None = None,
    data: Sequence[Dataset] = (),
) -> ZkVerdict:
    """ZK PVerify: the public checks of the key, then every chunk proof against the verifier's own statement.

    Bad input (an unsupported model, a key not made for ZK, quantization that changes too many test labels)
    raises ModeldeedError; a proof that does not hold is a rejection with reasons.
    """
    vk = verification_key
    require_supported(model, vk.input_shape, vk.challenge().count(0))
    quantized = quantize_mlp(model)
    test = None
    if test_data is not None:
        test = agreement(model, quantized, test_data.x)
        check_agreement(f"{test_data.name} test images", test, MIN_TEST_AGREEMENT)
    statement = derive_statement(vk, quantized, proof.slots)
    reasons, metrics = check_public_key(vk, data=data)
    reasons += opened_half_problems(vk)
    if proof.key_id != vk.key_id:
        reasons.append(f"the proof was made for key {proof.key_id[:16]}…, not for this key {vk.key_id[:16]}…")
    if proof.model_digest != statement.model_digest:
        reasons.append(
            f"the proof was made for a model whose quantized digest is {proof.model_digest[:16]}…; this model's is "
            f"{statement.model_digest[:16]}…"
        )
    spec: CircuitSpec = statement.spec
    if proof.circuit_id != spec.circuit_id():
        reasons.append(
            f"the proof was made with another circuit ({proof.circuit_id[:16]}…); this modeldeed builds "
            f"{spec.circuit_id()[:16]}… for widths {list(spec.dims)} and {spec.slots} slots"
        )
    chunks = statement.chunks()
    thresholds = [c.threshold for c in proof.chunks]
    if len(proof.chunks) != len(chunks):
        reasons.append(
            f"the proof has {len(proof.chunks)} chunk(s); {len(statement.hidden)} hidden triggers in "
            f"slots of {spec.slots} make {len(chunks)}"
        )
    for k, (t, positions) in enumerate(zip(thresholds, chunks)):
        if t > len(positions):
            reasons.append(f"chunk {k} claims {t} triggers but holds only {len(positions)}")
    proven = sum(thresholds)
    if proven < statement.required:
        reasons.append(
            f"the proofs show at least {proven} of {len(statement.hidden)} hidden triggers classified as committed; "
            f"at least {statement.required} are needed (epsilon = {vk.epsilon})"
        )
    key, compiled = setup(spec)
    metrics.update(
        {
            "circuit_id": spec.circuit_id(),
            "circuit_rows": key.rows,
            "slots": spec.slots,
            "chunks": len(chunks),
            "circuit_compiled_now": compiled,
            "circuit_key_pinned": is_pinned(spec.circuit_id()),
            "proof_bytes": sum(len(c.proof) for c in proof.chunks),
            "prover_quantization": proof.quantization.model_dump(mode="json"),
        }
    )
    valid: list[bool] = []
    if len(proof.chunks) == len(chunks):  # the cryptographic check runs even when a reason was found already
        seeds = challenges(statement, [{"seed": c.seed} for c in proof.chunks])
        cases = [
            (statement.public_input(k, c.threshold, seed, rhos), c.proof)
            for k, (c, (seed, rhos)) in enumerate(zip(proof.chunks, seeds))
        ]
        results, seconds = verify_chunks(key, cases, spec)
        for k, (result, t) in enumerate(zip(results, thresholds)):
            valid.append(result.get("valid") is True)
            if not valid[-1]:
                why = result.get("reason")
                reasons.append(
                    f"chunk {k}: the proof does not verify for this key, this model and t = {t}"
                    + (f" ({why})" if why else "")
                )
        metrics["verify_seconds"] = round(seconds, 2)
    metrics["proofs_valid"] = valid
    h = len(statement.hidden)
    n = vk.security_bits or 0
    chance = binomial_tail(h, statement.required, len(vk.classes))
    cheat = binomial_tail(max(h - (n - 1), 0), statement.required - (n - 1), len(vk.classes))
    cheat_log2 = log2_fraction(cheat)
    verdict = ZkVerdict(
        accepted=not reasons and len(valid) == len(chunks) and all(valid),
        reasons=tuple(reasons),
        key_id=vk.key_id,
        model_digest=statement.model_digest,
        hidden=h,
        required=statement.required,
        proven=proven,
        epsilon=vk.epsilon,
        chance_probability=float(chance),
        cheating_chance_log2=cheat_log2 if math.isfinite(cheat_log2) else None,
        test_agreement=test,
        metrics=metrics,
    )
    log.info("zk watermark %s", "accepted" if verdict.accepted else "rejected")
    return verdict
