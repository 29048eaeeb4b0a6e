"""Make the seed corpora from real files written by modeldeed itself (run by `make fuzz` before fuzzing).

Trains a tiny model on the embedded digits data while recording a proof, makes private and public watermark
keys and a training statement, and copies each file a target parses into `fuzz/corpus/<target>/`. The work
directory keeps the originals that targets need beside the fuzzed file (a key's tensors, a model's weights,
a checkpoint's delta base).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness import CORPUS_DIR, WORK_DIR


def modeldeed(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "modeldeed", *args], check=True, stdout=subprocess.DEVNULL)


def corpus(target: str) -> Path:
    folder = CORPUS_DIR / target
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    w = WORK_DIR
    modeldeed(  # the statement binds every setting of the run below (pol.statement)
        "pol", "commit", "--data", "digits", "--epochs", "1", "--seed", "3", "--model-args", '{"width": 4}',
        "--checkpoint-every", "8", "--out", str(w / "statement"),
    )  # fmt: skip
    modeldeed(
        "train", "--data", "digits", "--epochs", "1", "--seed", "3", "--model-args", '{"width": 4}',
        "--out", str(w / "model"), "--proof", str(w / "proof"), "--checkpoint-every", "8",
        "--statement", str(w / "statement"), "--no-progress",
    )  # fmt: skip
    modeldeed("pol", "commit-proof", str(w / "proof"), "--out", str(w / "commitment.json"))
    modeldeed("pol", "open", str(w / "proof"), "--commitment", str(w / "commitment.json"), "--out", str(w / "opened"))
    modeldeed("watermark", "keygen", "--data", "digits", "--size", "8", "--out", str(w / "key"))
    modeldeed("watermark", "pkeygen", "--data", "digits", "--security", "4", "--out", str(w / "pkey"))
    modeldeed("watermark", "pkeygen", "--data", "digits", "--sets", "2", "--size", "4", "--out", str(w / "bkey"))

    shutil.copy(w / "proof" / "proof.json", corpus("proof_json") / "proof.json")
    for name, doc in (("min", {}), ("list", [1, [2, {"a": None}]]), ("str", "\u00e9\\n")):
        (corpus("json") / name).write_text(json.dumps(doc))
    shutil.copy(w / "proof" / "proof.json", corpus("json") / "proof.json")
    shutil.copy(w / "model" / "model.json", corpus("model_json") / "model.json")
    for arch in ("resnet20", "resnet18"):
        doc = json.loads((w / "model" / "model.json").read_text())
        doc["architecture"], doc["arguments"] = arch, {"in_channels": 1, "num_classes": 10, "input_size": [8, 8]}
        (corpus("model_json") / f"{arch}.json").write_text(json.dumps(doc))
    shutil.copy(w / "model" / "model.safetensors", corpus("safetensors") / "model.safetensors")
    proof = json.loads((w / "proof" / "proof.json").read_text())
    for i, entry in enumerate(proof["checkpoints"][:3]):
        selector = bytes([i])  # fuzz_checkpoint: which (step, base_step) the proof lists this file for
        data = (w / "proof" / entry["file"]).read_bytes()
        (corpus("checkpoint") / f"{entry['step']}.bin").write_bytes(selector + data)
    (WORK_DIR / "checkpoints.json").write_text(json.dumps(proof["checkpoints"][:3]))
    for key in ("key", "pkey", "bkey"):
        for name in ("verification_key.json", "marking_key.json"):
            shutil.copy(w / key / name, corpus("watermark_keys") / f"{key}-{name}")
    shutil.copy(w / "statement" / "statement.json", corpus("statement") / "statement.json")
    shutil.copy(w / "statement" / "opening.json", corpus("statement") / "opening.json")
    shutil.copy(w / "commitment.json", corpus("pol_documents") / "commitment.json")
    shutil.copy(w / "opened" / "opened.json", corpus("pol_documents") / "opened.json")
    (corpus("pol_documents") / "environment.json").write_text(json.dumps(proof["environment"]))
    from receipts import receipts

    from modeldeed.registry.receipt import receipt_text

    for i, receipt in enumerate(receipts()):
        (corpus("receipt") / f"receipt-{i}.json").write_text(receipt_text(receipt))
    zk_proof = {  # the shape `watermark zk-prove` writes (docs/formats.md); a real proof string needs o1js
        "format": "modeldeed.zk.watermark-proof", "version": 1, "key_id": "ab" * 32, "model_digest": "cd" * 32,
        "circuit_id": "ef" * 32, "o1js": "2.15.0", "dims": [64, 16, 10], "slots": 8, "hidden": 4, "required": 4,
        "chunks": [{"threshold": 4, "seed": "7", "proof": "QUJD"}],
        "quantization": {"weight_bits": 16, "hidden_triggers": {"agreeing": 4, "total": 4, "rate": 1.0}},
        "prove_seconds": 1.0, "created": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    (corpus("zk_proof") / "proof.json").write_text(json.dumps(zk_proof))
    print(f"seed corpora in {CORPUS_DIR}, originals in {WORK_DIR}")


if __name__ == "__main__":
    main()
