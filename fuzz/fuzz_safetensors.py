"""Fuzz a model's weights file: the bounded safetensors parser and the exact load into the architecture."""

import sys

import atheris
import torch
from harness import WORK_DIR, run, safetensors_mutator

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_safetensors_bytes
    from modeldeed.models import build_model, load_state_exactly, read_model_info

SPEC = read_model_info(WORK_DIR / "model").spec
MODEL = build_model(SPEC)


def test_one(data: bytes) -> None:
    try:
        tensors = parse_safetensors_bytes(data, "model.safetensors")
        with torch.no_grad():
            load_state_exactly(MODEL, tensors, "model.safetensors")
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one, mutator=safetensors_mutator)
    sys.exit(0)
