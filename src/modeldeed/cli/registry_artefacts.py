"""Which bytes `registry publish` registers for each kind of artefact, and which kind an artefact is.

The one place that knows modeldeed's artefact layouts on the registry's behalf (the registry itself knows
none). A receipt's checker recomputes the digest with the same function, so this mapping is part of the
format: change it only together with docs/formats.md ("What `registry publish` registers").
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModeldeedError
from ..files import read_json_object
from ..registry.artefact import MAX_JSON_BYTES, directory_digest, file_digest, json_digest

# format field of a JSON document -> the kind it is registered as
FORMAT_KINDS = {
    "modeldeed.watermark.verification-key": "watermark-key",
    "modeldeed.pol-statement": "pol-statement",
    "modeldeed.pol.proof": "pol-commitment",
    "modeldeed.model": "model",
}
# a directory holding this file -> (kind, the public files whose manifest is registered)
DIRECTORY_KINDS = (
    ("verification_key.json", "watermark-key", ("verification_key.json", "verification_key.safetensors")),
    ("model.json", "model", ("model.json", "model.safetensors")),
    ("statement.json", "pol-statement", ("statement.json",)),
    ("proof.json", "pol-commitment", ("proof.json",)),
)


def artefact_digest(path: str | Path, kind: str | None = None) -> tuple[str, str, str]:
    """(kind, SHA-256 hex, what was hashed) for an artefact file or directory.

    - a watermark key directory: the manifest of its public files (verification_key.json, and
      verification_key.safetensors when there is one); never the secret marking key
    - a model directory: the manifest of model.json and model.safetensors
    - a directory holding statement.json or proof.json: that document's canonical JSON (for a proof, this
      is the proof's id: the SHA-256 of its canonical proof.json)
    - a JSON file: its canonical JSON; the kind follows its `format` field
    - any other directory or file (with --kind): the manifest of all its files, or its bytes
    """
    path = Path(path)
    if path.is_dir():
        for marker, marker_kind, names in DIRECTORY_KINDS:
            if (path / marker).is_file():
                chosen = _agree(kind, marker_kind, path)
                if marker in ("statement.json", "proof.json"):
                    document = read_json_object(path / marker, within=path, max_bytes=MAX_JSON_BYTES)
                    return chosen, json_digest(document), f"canonical JSON of {path / marker}"
                present = [n for n in names if (path / n).exists()]
                return chosen, directory_digest(path, present), f"manifest of {', '.join(present)} in {path}"
        if kind is None:
            raise ModeldeedError(f"{path}: not a modeldeed artefact directory I know; say what it is with --kind")
        return kind, directory_digest(path), f"manifest of every file in {path}"
    if path.suffix == ".json":
        document = read_json_object(path, max_bytes=MAX_JSON_BYTES)
        inferred = FORMAT_KINDS.get(str(document.get("format")))
        if inferred is None and kind is None:
            raise ModeldeedError(f"{path}: its format {document.get('format')!r} is not one I know; pass --kind")
        return _agree(kind, inferred, path), json_digest(document), f"canonical JSON of {path}"
    if kind is None:
        raise ModeldeedError(f"{path}: not a JSON document or an artefact directory; pass --kind to register its bytes")
    return kind, file_digest(path), f"bytes of {path}"


def _agree(asked: str | None, inferred: str | None, path: Path) -> str:
    if asked is not None and inferred is not None and asked != inferred:
        raise ModeldeedError(f"{path}: this is a {inferred} artefact, not a {asked} (drop --kind or fix it)")
    chosen = asked or inferred
    if chosen is None:
        raise ModeldeedError(f"{path}: pass --kind")
    return chosen
