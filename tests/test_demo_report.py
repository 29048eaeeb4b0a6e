"""The demo's pipeline end to end on a reduced setting, and the reports parsed back against the JSON."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest

from modeldeed.cli import main
from modeldeed.experiments import ExperimentSetting, run_experiment
from modeldeed.experiments.demo import DemoSetting, run_demo
from modeldeed.report.render import build_report


class Tables(HTMLParser):
    """Collects every table's cells as text and every embedded image."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[bytes] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            src = dict(attrs)["src"]
            assert src.startswith("data:image/png;base64,")
            self.images.append(base64.b64decode(src.split(",", 1)[1]))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None


def parse(path) -> Tables:
    parser = Tables()
    parser.feed(path.read_text())
    return parser


def row_of(tables: Tables, first_cell: str) -> list[str]:
    for table in tables.tables:
        for row in table:
            if row and row[0] == first_cell:
                return row
    raise AssertionError(f"no table row starts with {first_cell!r}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    setting = DemoSetting(
        epochs=12, attacks=("ftll", "prune-0.6"), spoof_methods=("infinitesimal",), checkpoint_every=20
    )
    return out, run_demo(out, setting, progress=False)


def test_demo_pipeline_proves_ownership_and_judges_attacks(demo):
    out, results = demo
    assert results["model"]["test_accuracy"] > 0.9
    assert results["watermark"]["private"]["accepted"] and results["watermark"]["public"]["accepted"]
    assert results["proof"]["reference"]["accepted"] and results["proof"]["hardened"]["accepted"]
    assert [a["label"] for a in results["attacks"]] == ["ftll", "prune-0.6"]
    spoof = results["spoofs"][0]
    assert spoof["method"] == "infinitesimal" and spoof["reference"]["accepted"] and not spoof["hardened"]["accepted"]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    for path in ("keys/private/verification_key.json", "proof/proof.json", "model/model.json", "statement.json"):
        assert (out / path).is_file()


def test_demo_report_matches_results(demo):
    out, results = demo
    report = parse(out / "report.html")
    assert len(report.tables) >= 5 and report.images and all(i.startswith(b"\x89PNG") for i in report.images)
    private = row_of(report, "private Verify (judge sees the key)")
    assert private[1] == "yes" and float(private[2]) == pytest.approx(
        100 * results["watermark"]["private"]["trigger_accuracy"], abs=0.01
    )
    ftll = row_of(report, "ftll")
    attack = results["attacks"][0]
    assert float(ftll[2]) == pytest.approx(100 * attack["test_accuracy_after"], abs=0.01)
    assert ftll[5] == ("yes" if attack["watermark_removed"] else "no")
    spoof = row_of(report, "infinitesimal")
    assert spoof[1] == "yes" and spoof[2] == "no"


def test_experiment_report_matches_its_json(tmp_path, capsys):
    setting = ExperimentSetting(epochs=6, trigger_size=20, train_limit=400)
    record = run_experiment("functionality", setting, tmp_path, progress=False)
    rows = record.results["rows"]
    assert [r["model"] for r in rows] == ["No-WM", "FROMSCRATCH", "PRETRAINED"]
    assert rows[1]["trigger_accuracy"] > rows[0]["trigger_accuracy"]
    assert main(["report", str(tmp_path)]) == 0
    report = parse(tmp_path / "report.html")
    assert len(report.images) == 1
    for row in rows:
        cells = row_of(report, row["model"])
        assert float(cells[1]) == pytest.approx(row["test_accuracy"], abs=0.01)
        assert float(cells[2]) == pytest.approx(row["trigger_accuracy"], abs=0.01)
        assert float(cells[4]) in (93.42, 93.81, 93.65)  # the paper's CIFAR-10 column beside ours
    capsys.readouterr()


def test_report_of_an_empty_directory_is_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no experiment results" in capsys.readouterr().err
    with pytest.raises(Exception, match="results directory not found"):
        build_report(tmp_path / "absent")
