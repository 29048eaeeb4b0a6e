"""The demo's zero-knowledge step: one small MLP, one key, PVerify in the clear next to PVerify in zero knowledge.

Why a separate model: the demo's cnn (two convolutions, ~100k weights) is far beyond what o1js proves in
2^16 rows, while the digits MLP 64-16-10 is a realistic small model the circuit supports. The same key and
model are checked both ways: cut-and-choose `pverify` with the marking key (whoever runs it sees the hidden
triggers) and `verify_watermark` from the public key and the proof alone (nobody sees them).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..data import DataSplits
from ..models import ModelInfo, build_model, save_model, spec_for_data
from ..training import TrainConfig, accuracy
from ..watermark import WatermarkVerdict, auto_triggers_per_batch, mark_from_scratch, pverify, save_key_pair
from .keys import zk_pkeygen
from .proof import save_proof
from .prover import ProofRun, prove_watermark
from .verifier import ZkVerdict, verify_watermark

log = logging.getLogger(__name__)


def zk_demo(
    out: str | Path,
    data: DataSplits,
    *,
    seed: int = 0,
    security_bits: int = 4,
    slots: int | None = 16,
    epochs: int = 30,
) -> dict[str, Any]:
    """Key, watermarked MLP, proof and both verdicts under `out`; returns them as plain JSON."""
    out = Path(out)
    started = time.perf_counter()
    mk, vk = zk_pkeygen(data.train.classes, data.train.input_shape, security_bits=security_bits)
    save_key_pair(out / "keys", mk, vk)
    spec = spec_for_data("mlp", data.train.input_shape, data.train.num_classes, {"hidden": [16]})
    config = TrainConfig(epochs=epochs, batch_size=32, lr=0.05, seed=seed)
    model = build_model(spec, seed=seed)
    steps = config.epochs * config.steps_per_epoch(len(data.train))
    mark_from_scratch(model, mk, data.train, config, k=auto_triggers_per_batch(len(mk.marking_indices()), steps))
    test_accuracy = accuracy(model, data.test)
    save_model(out / "model", model, ModelInfo(spec, data.train.classes, data.train.input_shape))
    keygen_train = time.perf_counter() - started
    clear = pverify(vk, model, marking_key=mk, data=(data.train,))
    run = prove_watermark(model, mk, vk, test_data=data.test, slots=slots)
    save_proof(out / "proof.json", run.proof)
    checked = time.perf_counter()
    verdict = verify_watermark(model, vk, run.proof, test_data=data.test, data=(data.train,))
    entry = demo_entry(clear, verdict, run, test_accuracy, time.perf_counter() - checked)
    entry["proof"]["keygen_and_training_seconds"] = round(keygen_train, 1)
    return entry


def demo_entry(
    clear: WatermarkVerdict, verdict: ZkVerdict, run: ProofRun, test_accuracy: float, verify_seconds: float
) -> dict[str, Any]:
    """The demo's JSON for one model checked both ways (what report/demo.py's zero-knowledge section reads)."""
    return {
        "architecture": "mlp " + "-".join(map(str, run.proof.dims)),
        "test_accuracy": test_accuracy,
        "key_id": verdict.key_id,
        "hidden_triggers": verdict.hidden,
        "cut_and_choose": clear.to_json(),
        "zero_knowledge": verdict.to_json(),
        "proof": {
            "bytes": sum(len(c.proof) for c in run.proof.chunks),
            "chunks": len(run.proof.chunks),
            "slots": run.proof.slots,
            "circuit_compiled_now": run.compiled_now,
            "prove_seconds": round(run.seconds, 1),
            "prover_peak_memory_bytes": run.peak_rss_bytes,
            "verify_seconds": round(verify_seconds, 1),
        },
        "quantization": run.proof.quantization.model_dump(mode="json"),
    }
