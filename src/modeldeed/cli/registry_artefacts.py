"""Which bytes `registry publish` registers for each kind of artefact, and which kind an artefact is.

The one place that maps modeldeed's artefact layouts to the registry's kinds (the registry itself knows
none). Each digest is computed by the library function that every verifier of that artefact calls, so a
key registered here, by `watermark keygen --registry`, or checked in a dispute has one digest:

    watermark-key     watermark.registration.key_digest: SHA-256 of the validated key's canonical JSON
    watermark-reveal  watermark.registration.reveal_file_digest: the reveal id
    model             models.model_digest: model.json's canonical JSON and model.safetensors' SHA-256
    pol-statement     SHA-256 of statement.json's canonical JSON (the statement id)
    pol-commitment    SHA-256 of proof.json's canonical JSON (the proof id)

Note for the PoL formats (training statement v2, the proof commitment): what gets registered is the
statement id and the commitment id, each the SHA-256 of its document's canonical JSON. When the PoL package
names functions for those ids (e.g. `statement_id`, `commitment_id`), call them here instead of `json_digest`,
so that `pol commit --registry`, `registry publish` and the verifiers keep hashing the same bytes.

This mapping is part of the format: change it only together with docs/formats.md ("What `registry publish`
registers").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ModeldeedError
from ..files import read_json_object
from ..registry.artefact import MAX_JSON_BYTES, directory_digest, file_digest, json_digest


def _key_digest(path: Path) -> str:
    from ..watermark import load_verification_key
    from ..watermark.registration import key_digest

    return key_digest(load_verification_key(path))


def _reveal_digest(path: Path) -> str:
    from ..watermark.registration import reveal_file_digest

    return reveal_file_digest(path)


def _model_digest(path: Path) -> str:
    from ..models.digest import model_digest

    return model_digest(path if path.is_dir() else path.parent)


def _document_digest(path: Path) -> str:
    within = path.parent
    return json_digest(read_json_object(path, within=within, max_bytes=MAX_JSON_BYTES))


# a directory holding this file -> (kind, digest of the artefact, given the file's path, what was hashed)
DIRECTORY_KINDS: tuple[tuple[str, str, Callable[[Path], str], str], ...] = (
    ("verification_key.json", "watermark-key", _key_digest, "canonical JSON of the verification key"),
    ("reveal.json", "watermark-reveal", _reveal_digest, "canonical JSON of the reveal (the reveal id)"),
    ("model.json", "model", _model_digest, "model digest (model.json's canonical JSON, model.safetensors' SHA-256)"),
    ("statement.json", "pol-statement", _document_digest, "canonical JSON of the training statement"),
    ("proof.json", "pol-commitment", _document_digest, "canonical JSON of proof.json (the proof id)"),
)
# the format field of a JSON file -> the file a directory of that artefact holds
FORMAT_FILES = {
    "modeldeed.watermark.verification-key": "verification_key.json",
    "modeldeed.watermark.reveal": "reveal.json",
    "modeldeed.model": "model.json",
    "modeldeed.pol-statement": "statement.json",
    "modeldeed.pol.proof": "proof.json",
}


def artefact_digest(path: str | Path, kind: str | None = None) -> tuple[str, str, str]:
    """(kind, SHA-256 hex, what was hashed) for an artefact file or directory.

    - a watermark key directory (or its verification_key.json): the validated key's canonical JSON, never
      the secret marking key; a reveal directory (or reveal.json): the reveal id
    - a model directory (or its model.json): the model digest (`modeldeed.models.model_digest`)
    - a directory holding statement.json or proof.json, or such a file: that document's canonical JSON
    - any other JSON file (with --kind): its canonical JSON; any other directory or file (with --kind): the
      manifest of all its files, or its bytes
    """
    path = Path(path)
    if path.is_dir():
        for marker, marker_kind, digest, what in DIRECTORY_KINDS:
            if (path / marker).is_file():
                chosen = _agree(kind, marker_kind, path)
                return chosen, digest(path / marker), f"{what} in {path}"
        if kind is None:
            raise ModeldeedError(f"{path}: not a modeldeed artefact directory I know; say what it is with --kind")
        return kind, directory_digest(path), f"manifest of every file in {path}"
    if path.suffix == ".json":
        document = read_json_object(path, max_bytes=MAX_JSON_BYTES)
        marker = FORMAT_FILES.get(str(document.get("format")))
        for known, marker_kind, digest, what in DIRECTORY_KINDS:
            if known == marker:
                return _agree(kind, marker_kind, path), digest(path), f"{what} {path}"
        if kind is None:
            raise ModeldeedError(f"{path}: its format {document.get('format')!r} is not one I know; pass --kind")
        return kind, json_digest(document), f"canonical JSON of {path}"
    if kind is None:
        raise ModeldeedError(f"{path}: not a JSON document or an artefact directory; pass --kind to register its bytes")
    return kind, file_digest(path), f"bytes of {path}"


def _agree(asked: str | None, inferred: str, path: Path) -> str:
    if asked is not None and asked != inferred:
        raise ModeldeedError(f"{path}: this is a {inferred} artefact, not a {asked} (drop --kind or fix it)")
    return inferred
