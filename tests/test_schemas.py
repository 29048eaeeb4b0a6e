"""The JSON Schemas in docs/schemas/ are those the declared formats export, and docs/formats.md links each."""

from __future__ import annotations

import json
from pathlib import Path

from modeldeed.schema_export import main, schemas

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schemas_are_current(capsys) -> None:
    assert main(["--check", "--out", str(ROOT / "docs" / "schemas")]) == 0, capsys.readouterr().err


def test_check_notices_a_stale_schema(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    name = sorted(schemas())[0]
    doc = json.loads((tmp_path / name).read_text())
    doc["title"] = "changed"
    (tmp_path / name).write_text(json.dumps(doc))
    (tmp_path / "modeldeed.gone.json").write_text("{}")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{name}: missing or out of date" in err and "modeldeed.gone.json: no document declares" in err


def test_formats_doc_links_every_schema() -> None:
    text = (ROOT / "docs" / "formats.md").read_text()
    for name in schemas():
        assert f"schemas/{name}" in text, name


def test_the_model_schema_says_what_the_loader_enforces() -> None:
    schema = json.loads(schemas()["modeldeed.model.json"])
    assert schema["additionalProperties"] is False and schema["properties"]["format"]["const"] == "modeldeed.model"
    assert schema["properties"]["input_shape"]["minItems"] == schema["properties"]["input_shape"]["maxItems"] == 3
