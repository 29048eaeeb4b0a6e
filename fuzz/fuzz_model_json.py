"""Fuzz model.json: the declared ModelDocument, the architecture arguments, sizing on the meta device, and
(for what sizes small) the real build and the exact load of the real weights (modeldeed.models)."""

import sys

import atheris
import torch  # noqa: F401 - imported before instrumentation: only modeldeed's own code is instrumented
from harness import WORK_DIR, run

with atheris.instrument_imports(include=["modeldeed"]):
    from modeldeed.errors import ModeldeedError
    from modeldeed.files import parse_json_bytes, parse_safetensors_bytes
    from modeldeed.models import build_model, load_state_exactly, measure_model
    from modeldeed.models.store import model_info_from_json

WEIGHTS = parse_safetensors_bytes((WORK_DIR / "model" / "model.safetensors").read_bytes(), "model.safetensors")
BUILD_LIMIT = 8 << 20  # build for real only what is small: the fuzzer's time goes to parsing, not allocation


def test_one(data: bytes) -> None:
    try:
        info = model_info_from_json(parse_json_bytes(data, "model.json"), "model.json")
        size = measure_model(info.spec)
        if size is not None and size.nbytes <= BUILD_LIMIT:
            load_state_exactly(build_model(info.spec), dict(WEIGHTS), "model.safetensors")
    except ModeldeedError:
        pass


if __name__ == "__main__":
    run(test_one)
    sys.exit(0)
