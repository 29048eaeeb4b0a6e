"""The bounded readers every loader goes through: regular files only, inside the named directory, sizes and
JSON shapes limited before anything is allocated, and the declared-document base built on them."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

import pytest
import torch

from modeldeed.errors import FormatError
from modeldeed.files import (
    parse_json_bytes,
    read_json_object,
    read_regular_file,
    read_safetensors,
    write_safetensors_atomic,
)
from modeldeed.schema import Document, Hex64, load_document, validate_document


def test_reads_a_regular_file_within_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, max_bytes=100, within=tmp_path) == b"x" * 100
    with pytest.raises(FormatError, match=r"a\.bin: is 100 bytes, more than the 99 allowed"):
        read_regular_file(path, max_bytes=99)


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "checkpoint.safetensors"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            read_regular_file(fifo, max_bytes=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "reading a FIFO must not block"
    assert isinstance(outcome[0], FormatError) and "named pipe" in str(outcome[0])


def test_device_files_and_directories_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "model.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(FormatError, match="character device"):
        read_regular_file(link, max_bytes=1 << 20)
    with pytest.raises(FormatError, match="is a directory|not a regular file"):
        read_regular_file(tmp_path, max_bytes=1 << 20)


def test_a_symlink_out_of_the_directory_is_not_followed_and_nothing_about_its_target_leaks(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("the owner's secret")
    proof = tmp_path / "proof"
    proof.mkdir()
    (proof / "proof.json").symlink_to(outside)
    with pytest.raises(FormatError) as caught:
        read_json_object(proof / "proof.json", within=proof)
    message = str(caught.value)
    assert "outside" in message and "secret" not in message.replace(str(tmp_path), "")
    inner = proof / "inner.json"
    inner.write_text("{}")
    (proof / "alias.json").symlink_to(inner)
    assert read_json_object(proof / "alias.json", within=proof) == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b"{" + b'"a":{' * 40 + b"}" * 41, "nested more than 32"),
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": -Infinity}', "Infinity is not allowed"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_hostile_json_is_refused_with_a_reason(text: bytes, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        parse_json_bytes(text, "doc.json")


def test_json_size_is_bounded_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b'{"a": "' + b"x" * 2000 + b'"}')
    with pytest.raises(FormatError, match="more than the 1000 allowed"):
        read_json_object(path, max_bytes=1000)
    path.write_bytes(b"[1, 2]")
    with pytest.raises(FormatError, match="expected a JSON object, found list"):
        read_json_object(path)


def test_safetensors_are_bounded_by_what_the_caller_expects(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    data = write_safetensors_atomic(path, {"w": torch.zeros(100)})
    assert torch.equal(read_safetensors(path, max_bytes=len(data))["w"], torch.zeros(100))
    with pytest.raises(FormatError, match="more than the"):
        read_safetensors(path, max_bytes=len(data) - 1)
    path.write_bytes(data[:50])
    with pytest.raises(FormatError, match="truncated|not a valid safetensors"):
        read_safetensors(path, max_bytes=1 << 20)


class Example(Document):
    format: Literal["modeldeed.example"]
    version: Literal[1]
    digest: Hex64
    count: int
    weights: list[float]


def good() -> dict:
    return {"format": "modeldeed.example", "version": 1, "digest": "ab" * 32, "count": 3, "weights": [1, 0.5]}


def test_documents_validate_strictly() -> None:
    doc = validate_document(Example, good(), "ex.json")
    assert doc.count == 3 and doc.weights == [1.0, 0.5]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"count": "3"}, "field 'count': Input should be a valid integer"),
        ({"count": True}, "field 'count'"),
        ({"digest": "AB" * 32}, "field 'digest': String should match pattern"),
        ({"extra": 1}, "field 'extra': Extra inputs are not permitted"),
        ({"weights": [1, "x"]}, r"field 'weights\[1\]'"),
        ({"format": "modeldeed.other"}, "is not a modeldeed.example document .*right file"),
        ({"version": 2}, "field 'version'"),
    ],
)
def test_document_errors_name_the_file_and_the_field(change: dict, problem: str) -> None:
    with pytest.raises(FormatError, match=r"^ex\.json: " + problem):
        validate_document(Example, {**good(), **change}, "ex.json")


def test_load_document_reads_through_the_bounded_reader(tmp_path: Path) -> None:
    path = tmp_path / "ex.json"
    path.write_text(
        '{"format": "modeldeed.example", "version": 1, "digest": "' + "0" * 64 + '", "count": 1, "weights": []}'
    )
    assert load_document(Example, path).count == 1
    with pytest.raises(FormatError, match="more than the 10 allowed"):
        load_document(Example, path, max_bytes=10)
