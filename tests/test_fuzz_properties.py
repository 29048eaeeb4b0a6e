"""Property tests over every parser a stranger's file reaches: each input parses or raises ModeldeedError.

Never another exception, never more than a few seconds, never a large allocation. Inputs are hostile
variants of real files made by modeldeed (see tests/hostile_strategies.py) and random bytes. The budget is
small (the suite must stay fast); `make fuzz` runs the atheris targets under fuzz/ for long runs.
"""

from __future__ import annotations

import json
import resource
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_strategies import mutated_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeed.cli import main
from modeldeed.errors import ModeldeedError
from modeldeed.files import parse_json_bytes, parse_safetensors_bytes
from modeldeed.models import build_model, load_state_exactly, measure_model, read_model_info
from modeldeed.models.store import model_info_from_json
from modeldeed.pol.checkpoints import decode_checkpoint
from modeldeed.pol.commitment import load_commitment
from modeldeed.pol.environment import Environment, differences
from modeldeed.pol.opened import OPENED_FILE, load_opened
from modeldeed.pol.proof import MAX_PROOF_BYTES, parse_proof
from modeldeed.pol.statement import load_opening, load_statement
from modeldeed.schema import validate_document
from modeldeed.watermark.keys import load_marking_key, load_verification_key

SECONDS_PER_INPUT = 5.0
GROWTH_MB = 300  # peak memory may grow by at most this much over a whole property test
FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real files written by modeldeed: a statement, a model with its proof, and three kinds of key."""
    w = tmp_path_factory.mktemp("real")
    settings = ["--data", "digits", "--epochs", "1", "--seed", "3", "--model-args", '{"width": 4}']
    settings += ["--checkpoint-every", "8"]  # the statement binds every setting of the run (pol.statement)
    assert main(["pol", "commit", *settings, "--out", str(w / "statement")]) == 0
    argv = ["train", *settings, "--out", str(w / "model"), "--proof", str(w / "proof")]
    assert main([*argv, "--statement", str(w / "statement"), "--no-progress"]) == 0
    assert main(["pol", "commit-proof", str(w / "proof"), "--out", str(w / "commitment.json")]) == 0
    assert (
        main(["pol", "open", str(w / "proof"), "--commitment", str(w / "commitment.json"), "--out", str(w / "opened")])
        == 0
    )
    assert main(["watermark", "keygen", "--data", "digits", "--size", "8", "--out", str(w / "key")]) == 0
    assert main(["watermark", "pkeygen", "--data", "digits", "--security", "4", "--out", str(w / "pkey")]) == 0
    return w


def holds(parse: Callable[[bytes], Any], data: bytes) -> None:
    """The property: parses, or raises ModeldeedError; in bounded time."""
    started = time.perf_counter()
    try:
        parse(data)
    except ModeldeedError:
        pass
    assert time.perf_counter() - started < SECONDS_PER_INPUT


@pytest.fixture()
def memory_bound():
    before = peak_mb()
    yield
    assert peak_mb() - before < GROWTH_MB


def doc_of(path: Path) -> Any:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------- the JSON reader


@FAST
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_json_reader_on_random_bytes(data: bytes) -> None:
    holds(lambda d: parse_json_bytes(d, "fuzz.json"), data)


@FAST
@given(data=st.data())
def test_json_reader_on_mutated_documents(files: Path, data: st.DataObject, memory_bound: None) -> None:
    holds(lambda d: parse_json_bytes(d, "fuzz.json"), data.draw(mutated_json(doc_of(files / "model" / "model.json"))))


def test_json_reader_refuses_what_it_must() -> None:
    for text in (b'{"a": 1, "a": 2}', b'["\\ud800"]', b"[NaN]", b"[" * 5000 + b"]" * 5000, b"\xff"):
        with pytest.raises(ModeldeedError):
            parse_json_bytes(text, "x.json")


# --------------------------------------------------------------------------------------- model.json + weights


def parse_model(weights: dict[str, torch.Tensor]) -> Callable[[bytes], None]:
    def parse(data: bytes) -> None:
        info = model_info_from_json(parse_json_bytes(data, "model.json"), "model.json")
        size = measure_model(info.spec)
        if size is not None and size.nbytes <= 8 << 20:
            load_state_exactly(build_model(info.spec), dict(weights), "model.safetensors")

    return parse


@FAST
@given(data=st.data())
def test_model_json(files: Path, data: st.DataObject, memory_bound: None) -> None:
    weights = parse_safetensors_bytes((files / "model" / "model.safetensors").read_bytes(), "w")
    holds(parse_model(weights), data.draw(mutated_json(doc_of(files / "model" / "model.json"))))


@st.composite
def byte_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """Flip, insert, delete or truncate bytes of a real file; often in its header, where the parser looks."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.one_of(st.integers(0, min(len(data), 300)), st.integers(0, len(data))))
        op = draw(st.integers(0, 3))
        if op == 0 and where < len(data):
            data[where] ^= draw(st.integers(1, 255))
        elif op == 1:
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            del data[where : where + draw(st.integers(1, 64))]
        else:
            data = data[:where]
    return bytes(data)


@FAST
@given(data=st.data())
def test_model_weights(files: Path, data: st.DataObject, memory_bound: None) -> None:
    model = build_model(read_model_info(files / "model").spec)
    original = (files / "model" / "model.safetensors").read_bytes()

    def parse(raw: bytes) -> None:
        load_state_exactly(model, parse_safetensors_bytes(raw, "model.safetensors"), "model.safetensors")

    holds(parse, data.draw(byte_mutations(original)))


# ------------------------------------------------------------------------------------ proof.json, checkpoints


@FAST
@given(data=st.data())
def test_proof_json(files: Path, data: st.DataObject, memory_bound: None) -> None:
    def parse(raw: bytes) -> None:
        doc = parse_json_bytes(raw, "proof.json", max_bytes=MAX_PROOF_BYTES)
        if isinstance(doc, dict):
            parse_proof(doc, "proof.json")

    holds(parse, data.draw(mutated_json(doc_of(files / "proof" / "proof.json"))))


def checkpoint_parts(raw: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    return parse_safetensors_bytes(raw, "c"), json.loads(header["__metadata__"]["modeldeed"])


@FAST
@given(data=st.data())
def test_checkpoints(files: Path, data: st.DataObject, memory_bound: None) -> None:
    from safetensors.torch import save

    entries = doc_of(files / "proof" / "proof.json")["checkpoints"][:2]
    raws = [(files / "proof" / e["file"]).read_bytes() for e in entries]
    base = decode_checkpoint(raws[0], "c0", entries[0]["step"])
    index = data.draw(st.integers(0, 1))
    entry, raw = entries[index], raws[index]
    if data.draw(st.booleans()):
        hostile = data.draw(byte_mutations(raw))
    else:  # a structurally mutated checkpoint header around the real tensors
        blobs, header = checkpoint_parts(raw)
        text = data.draw(mutated_json(header)).decode("utf-8", "replace")
        hostile = save(blobs, metadata={"modeldeed": text})
    holds(
        lambda d: decode_checkpoint(
            d, "c", entry["step"], base if entry["base_step"] is not None else None, entry["base_step"]
        ),
        hostile,
    )


# ------------------------------------------------------------------------------- keys, statements, openings


@FAST
@given(data=st.data(), kind=st.sampled_from(["key", "pkey"]), name=st.sampled_from(["verification_key", "marking_key"]))
def test_watermark_keys(
    files: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, kind: str, name: str, memory_bound: None
) -> None:
    folder = tmp_path_factory.mktemp("key")
    shutil.copytree(files / kind, folder, dirs_exist_ok=True)
    hostile = data.draw(mutated_json(doc_of(files / kind / f"{name}.json")))

    def parse(raw: bytes) -> None:
        (folder / f"{name}.json").write_bytes(raw)
        (load_verification_key if name == "verification_key" else load_marking_key)(folder)

    holds(parse, hostile)


@FAST
@given(data=st.data(), name=st.sampled_from(["statement", "opening"]))
def test_statements_and_openings(
    files: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, name: str, memory_bound: None
) -> None:
    path = tmp_path_factory.mktemp("statement") / f"{name}.json"
    hostile = data.draw(mutated_json(doc_of(files / "statement" / f"{name}.json")))

    def parse(raw: bytes) -> None:
        path.write_bytes(raw)
        (load_statement if name == "statement" else load_opening)(path)

    holds(parse, hostile)


@FAST
@given(data=st.data())
def test_proof_commitments(
    files: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, memory_bound: None
) -> None:
    path = tmp_path_factory.mktemp("commitment") / "commitment.json"
    hostile = data.draw(mutated_json(doc_of(files / "commitment.json")))

    def parse(raw: bytes) -> None:
        path.write_bytes(raw)
        load_commitment(path)

    holds(parse, hostile)


@FAST
@given(data=st.data())
def test_opened_proofs(
    files: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, memory_bound: None
) -> None:
    """opened.json beside the real opened files: the parser, then (when it parses) the integrity check's reads."""
    folder = tmp_path_factory.mktemp("opened")
    shutil.copytree(files / "opened", folder, dirs_exist_ok=True)
    hostile = data.draw(mutated_json(doc_of(files / "opened" / OPENED_FILE)))

    def parse(raw: bytes) -> None:
        (folder / OPENED_FILE).write_bytes(raw)
        source, _ = load_opened(folder)
        for index in range(source.total_steps + 1):
            if source.has_checkpoint(index):
                source.checkpoint(index)
        source.samples()

    holds(parse, hostile)


@FAST
@given(data=st.data())
def test_environment_records(files: Path, data: st.DataObject, memory_bound: None) -> None:
    recorded = validate_document(Environment, doc_of(files / "proof" / "proof.json")["environment"], "environment")

    def parse(raw: bytes) -> None:
        env = validate_document(Environment, parse_json_bytes(raw, "environment"), "environment")
        differences(recorded, env)

    holds(parse, data.draw(mutated_json(recorded.model_dump(mode="json"))))


# -------------------------------------------------------------------------------------------------- receipts


@FAST
@given(data=st.data())
def test_registry_receipts(data: st.DataObject, memory_bound: None) -> None:
    from registry_helpers import build_log, golden_log_key

    from modeldeed.registry.receipt import MAX_RECEIPT_BYTES, Receipt, receipt_text, registration_beacon, verify_receipt
    from modeldeed.schema import validate_document

    _, receipts, _ = build_log(3)
    verifier = golden_log_key().verifier()
    original = json.loads(receipt_text(receipts[data.draw(st.integers(0, 2))]))

    def parse(raw: bytes) -> None:
        receipt = validate_document(Receipt, parse_json_bytes(raw, "r.json", max_bytes=MAX_RECEIPT_BYTES), "r.json")
        if verify_receipt(receipt, verifier).valid:
            registration_beacon(receipt)

    holds(parse, data.draw(mutated_json(original)))
