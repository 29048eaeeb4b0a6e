"""Which bytes `registry publish` registers for each kind of artefact, and which kind an artefact is.

The one place that maps modeldeed's artefact formats to the registry's kinds (the registry itself knows
none). The kind is read off the document's own `format` field, never off its file name, and each digest is
computed by the library function every verifier of that artefact calls, so an artefact registered here, by
`watermark keygen --registry`, `pol commit --registry`, `pol commit-proof --registry` or checked in a
dispute has one digest:

    modeldeed.watermark.verification-key  watermark-key     key_digest: canonical JSON of the validated key
    modeldeed.watermark.reveal            watermark-reveal  reveal_file_digest: the reveal id
    modeldeed.model                       model             models.model_digest (model.json + the weights' SHA-256)
    modeldeed.pol-statement               pol-statement     TrainingStatement.id (canonical JSON of the statement)
    modeldeed.pol-commitment              pol-commitment    ProofCommitment.id (canonical JSON of the commitment)
    modeldeed.pol.proof                   pol-commitment    ProofCommitment.id of the proof's commitment, recomputed
                                                            from its checkpoints (`pol.commit_proof`)

A directory is the artefact of the one known document directly inside it (a `pol commit` directory holds
statement.json and opening.json: only the statement is an artefact). This mapping is part of the format:
change it only together with docs/formats.md ("What `registry publish` registers").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ModeldeedError
from ..files import read_json_object
from ..registry.artefact import MAX_JSON_BYTES, directory_digest, file_digest, json_digest

MAX_SCANNED = 64  # JSON files looked at in one directory


def _key_digest(path: Path) -> str:
    from ..watermark import load_verification_key
    from ..watermark.registration import key_digest

    return key_digest(load_verification_key(path))


def _reveal_digest(path: Path) -> str:
    from ..watermark.registration import reveal_file_digest

    return reveal_file_digest(path)


def _model_digest(path: Path) -> str:
    from ..models.digest import model_digest

    return model_digest(path.parent)


def _statement_digest(path: Path) -> str:
    from ..pol.registration import statement_id
    from ..pol.statement import load_statement

    return statement_id(load_statement(path))


def _commitment_digest(path: Path) -> str:
    from ..pol.commitment import load_commitment
    from ..pol.registration import commitment_id

    return commitment_id(load_commitment(path))


def _proof_commitment_digest(path: Path) -> str:
    from ..pol.commitment import commit_proof
    from ..pol.registration import commitment_id

    return commitment_id(commit_proof(path.parent)[0])


# a document's format -> (kind, digest of the document's path, what was hashed)
FORMATS: dict[str, tuple[str, Callable[[Path], str], str]] = {
    "modeldeed.watermark.verification-key": ("watermark-key", _key_digest, "canonical JSON of the verification key"),
    "modeldeed.watermark.reveal": ("watermark-reveal", _reveal_digest, "canonical JSON of the reveal (the reveal id)"),
    "modeldeed.model": ("model", _model_digest, "model digest (model.json's canonical JSON, the weights' SHA-256)"),
    "modeldeed.pol-statement": ("pol-statement", _statement_digest, "the training statement's id"),
    "modeldeed.pol-commitment": ("pol-commitment", _commitment_digest, "the proof commitment's id"),
    "modeldeed.pol.proof": ("pol-commitment", _proof_commitment_digest, "the id of the proof's recomputed commitment"),
}


def document_format(path: Path) -> str | None:
    """The `format` field of a JSON document (read with the bounded reader), or None."""
    value = read_json_object(path, within=path.parent, max_bytes=MAX_JSON_BYTES).get("format")
    return value if isinstance(value, str) else None


def _known_documents(directory: Path) -> list[tuple[Path, str]]:
    """(path, format) of the known documents directly inside `directory` (regular *.json files only)."""
    found = []
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                names.append(entry.name)
                if len(names) > MAX_SCANNED:
                    raise ModeldeedError(
                        f"{directory}: holds more than {MAX_SCANNED} JSON files; name the artefact's file"
                    )
    names.sort()
    for name in names:
        fmt = document_format(directory / name)
        if fmt in FORMATS:
            found.append((directory / name, fmt))
    return found


def artefact_digest(path: str | Path, kind: str | None = None) -> tuple[str, str, str]:
    """(kind, SHA-256 hex, what was hashed) for an artefact file or directory.

    - a known document (see the module docstring), or a directory holding exactly one: its kind and digest
    - any other JSON file (with --kind): its canonical JSON; any other directory or file (with --kind): the
      manifest of all its files, or its bytes
    """
    path = Path(path)
    if path.is_dir():
        documents = _known_documents(path)
        if kind is not None:
            documents = [(p, f) for p, f in documents if FORMATS[f][0] == kind] or documents
        if len(documents) > 1:
            names = ", ".join(p.name for p, _ in documents)
            raise ModeldeedError(f"{path}: holds several artefacts ({names}); name the file to register")
        if documents:
            file, fmt = documents[0]
            marker_kind, digest, what = FORMATS[fmt]
            return _agree(kind, marker_kind, file), digest(file), f"{what} in {path}"
        if kind is None:
            raise ModeldeedError(f"{path}: not a modeldeed artefact directory I know; say what it is with --kind")
        return kind, directory_digest(path), f"manifest of every file in {path}"
    if path.suffix == ".json":
        document = read_json_object(path, max_bytes=MAX_JSON_BYTES)
        fmt = document.get("format")
        if isinstance(fmt, str) and fmt in FORMATS:
            marker_kind, digest, what = FORMATS[fmt]
            return _agree(kind, marker_kind, path), digest(path), f"{what} {path}"
        if kind is None:
            raise ModeldeedError(f"{path}: its format {str(fmt)[:60]!r} is not one I know; pass --kind")
        return kind, json_digest(document), f"canonical JSON of {path}"
    if kind is None:
        raise ModeldeedError(f"{path}: not a JSON document or an artefact directory; pass --kind to register its bytes")
    return kind, file_digest(path), f"bytes of {path}"


def _agree(asked: str | None, inferred: str, path: Path) -> str:
    if asked is not None and asked != inferred:
        raise ModeldeedError(f"{path}: this is a {inferred} artefact, not a {asked} (drop --kind or fix it)")
    return inferred
