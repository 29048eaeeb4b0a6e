"""Fuzz compressed PoL checkpoints (modeldeed.pol.checkpoints.decode_checkpoint).

The first byte chooses which entry of the seed proof the file stands for (its step and delta base, with the
real decoded base tensors); the rest is the checkpoint file.
"""

import json
import sys

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import WORK_DIR, run, safetensors_mutator

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.pol.checkpoints import decode_checkpoint
    from modeldeed.pol.proof import load_proof
    from modeldeed.pol.store import state_budget

ENTRIES = json.loads((WORK_DIR / "checkpoints.json").read_text())
BUDGET = state_budget(load_proof(WORK_DIR / "proof")[0].header)  # what every reader passes (pol.store)
DECODED: dict[int, dict] = {}
for entry in ENTRIES:
    raw = (WORK_DIR / "proof" / entry["file"]).read_bytes()
    base = DECODED.get(entry["base_step"]) if entry["base_step"] is not None else None
    DECODED[entry["step"]] = decode_checkpoint(raw, entry["file"], entry["step"], base, entry["base_step"])


def test_one(data: bytes) -> None:
    if not data:
        return
    entry = ENTRIES[data[0] % len(ENTRIES)]
    base = DECODED[entry["base_step"]] if entry["base_step"] is not None else None
    try:
        decode_checkpoint(
            data[1:], "checkpoint.safetensors", entry["step"], base, entry["base_step"], max_state_bytes=BUDGET
        )
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one, mutator=lambda data, size, seed: safetensors_mutator(data, size, seed, prefix=1))
    sys.exit(0)
