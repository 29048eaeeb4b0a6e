"""The owner's side: prove in zero knowledge that the model knows the hidden half of a cut-and-choose key.

Adi et al. 2018, Appendix A, PVerify step 4, made concrete: the owner, holding the marking key, proves that
every hidden trigger opens its Poseidon commitment and that at least ⌈(1-ε)·h⌉ of them are classified as
committed by the model's quantized twin, without revealing any trigger, label or nonce.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..watermark import MarkingKey, VerificationKey
from ..watermark.verify import key_pair_problems
from .circuit import choose_slots, circuit_dir, setup
from .node import O1JS_VERSION, CircuitRefused, run_node
from .proof import PROOF_FORMAT, AgreementFigures, ChunkProof, Quantization, ZkProof
from .quantize import (
    MIN_TEST_AGREEMENT,
    MIN_TRIGGER_AGREEMENT,
    Agreement,
    QuantizedMLP,
    agreement,
    check_agreement,
    quantize_mlp,
)
from .statement import challenges, derive_statement, honest_claims, split_threshold
from .support import require_supported

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProofRun:
    """A proof and what making it cost."""

    proof: ZkProof
    correct: int  # hidden triggers the quantized model classifies as committed (secret: not in the proof)
    seconds: float  # proving time, all chunks
    peak_rss_bytes: int | None  # the largest node prover's peak memory
    compiled_now: bool


def quantization_report(
    model: nn.Module, quantized: QuantizedMLP, hidden_images: torch.Tensor, test_data: Dataset | None
) -> Quantization:
    """Agreement of the integer model with the float one on the hidden triggers and the test set; refuse if low."""
    triggers = agreement(model, quantized, hidden_images)
    check_agreement("hidden triggers", triggers, MIN_TRIGGER_AGREEMENT)
    test: Agreement | None = None
    if test_data is not None:
        test = agreement(model, quantized, test_data.x)
        check_agreement(f"{test_data.name} test images", test, MIN_TEST_AGREEMENT)
    return Quantization(
        weight_bits=quantized.weight_bits,
        hidden_triggers=AgreementFigures(**triggers.to_json()),
        test_set=AgreementFigures(**test.to_json()) if test else None,
        dataset=test_data.name if test_data is not None else None,
    )


def prove_watermark(
    model: nn.Module,
    marking_key: MarkingKey,
    verification_key: VerificationKey,
    *,
    test_data: Dataset | None = None,
    slots: int | None = None,
    threshold: int | None = None,
) -> ProofRun:
    """Prove the hidden half of `verification_key` against `model`; raises CircuitRefused if it does not hold.

    `threshold` (default ⌈(1-ε)·h⌉) is the total the proofs claim. With the default, a model that does not
    reach it is refused at once (no proof exists, so none is attempted); an explicit `threshold` goes to the
    circuit whatever it is, which is how the tests show that the circuit itself refuses a cheating prover.
    """
    mk, vk = marking_key, verification_key
    problems = key_pair_problems(mk, vk)
    if problems:
        raise ModeldeedError(f"the keys do not belong together: {problems[0]}")
    hidden = [i for i, bit in enumerate(vk.challenge()) if bit == 0]
    require_supported(model, vk.input_shape, len(hidden))
    quantized = quantize_mlp(model)
    statement = derive_statement(vk, quantized, slots or choose_slots(quantized.dims, len(hidden)))
    images = mk.images[hidden]
    report = quantization_report(model, quantized, images, test_data)
    labels = [int(mk.labels[i]) for i in hidden]
    nonces = [mk.image_nonces[i] for i in hidden]
    claims = [honest_claims(statement, chunk, images, labels, nonces) for chunk in range(len(statement.chunks()))]
    correct = sum(c.correct for c in claims)
    total = statement.required if threshold is None else int(threshold)
    capacity = statement.spec.slots * len(statement.chunks())
    if not 0 <= total <= capacity:
        raise ModeldeedError(f"a threshold of {total} is outside what {len(statement.chunks())} proof(s) of "
                             f"{statement.spec.slots} slots can state (0..{capacity})")  # fmt: skip
    thresholds = split_threshold([c.correct for c in claims], total)
    log.info("%d of %d hidden triggers classified as committed; proving at least %d", correct, len(hidden), total)
    if threshold is None and correct < total:
        raise CircuitRefused(
            f"the quantized model classifies only {correct} of the {len(hidden)} hidden triggers as committed; "
            f"at least {total} are needed (epsilon = {vk.epsilon}), so no proof exists"
        )
    key, compiled = setup(statement.spec)
    seeds = challenges(
        statement,
        [{"transcript": c.transcript(statement.header(k, t))} for k, (c, t) in enumerate(zip(claims, thresholds))],
    )
    chunks, seconds, peak = [], 0.0, None
    for chunk, (claim, t, (seed, rhos)) in enumerate(zip(claims, thresholds, seeds)):
        result = run_node(
            "prove",
            {
                **statement.spec.request(),
                "public": statement.public_input(chunk, t, seed, rhos),
                "private": claim.private(),
                "vk_hash": key.vk_hash,
            },
            circuit_dir(statement.spec),
        )
        chunks.append(ChunkProof(threshold=t, seed=str(seed), proof=str(result.answer["proof"])))
        seconds += result.seconds
        if result.peak_rss_bytes is not None:
            peak = max(peak or 0, result.peak_rss_bytes)
    proof = ZkProof(
        format=PROOF_FORMAT,
        version=1,
        key_id=vk.key_id,
        model_digest=statement.model_digest,
        circuit_id=statement.spec.circuit_id(),
        o1js=O1JS_VERSION,
        dims=list(statement.spec.dims),
        slots=statement.spec.slots,
        hidden=len(hidden),
        required=statement.required,
        chunks=chunks,
        quantization=report,
        prove_seconds=round(seconds, 2),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return ProofRun(proof, correct, seconds, peak, compiled)
