"""The demo end to end on a reduced setting: the report read back against results.json and the files beside it,
the commands it lists run for real, and a run directory that is never overwritten behind a report's back."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from modeldeed.cli import main
from modeldeed.errors import ModeldeedError
from modeldeed.experiments import ExperimentSetting, run_experiment
from modeldeed.experiments.demo import DemoSetting, run_demo
from modeldeed.experiments.rundir import RunDirectory, default_run_directory
from modeldeed.pol.commitment import load_commitment
from modeldeed.pol.proof import load_proof
from modeldeed.pol.statement import load_statement
from modeldeed.registry import load_log_key, load_receipt, verify_receipt
from modeldeed.report.render import build_report
from modeldeed.report.verdict import demo_claims
from modeldeed.watermark import load_verification_key


class Report(HTMLParser):
    """Collects every table's cells as text, every embedded image, the verdict's items and the commands."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[bytes] = []
        self.verdict: list[str] = []
        self.commands: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._li: list[str] | None = None
        self._pre: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "li":
            self._li = []
        elif tag == "pre":
            self._pre = []
        elif tag == "img":
            src = dict(attrs)["src"]
            assert src.startswith("data:image/png;base64,")
            self.images.append(base64.b64decode(src.split(",", 1)[1]))

    def handle_data(self, data):
        self.text.append(data)
        for part in (self._cell, self._li, self._pre):
            if part is not None:
                part.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "li" and self._li is not None:
            self.verdict.append("".join(self._li))
            self._li = None
        elif tag == "pre" and self._pre is not None:
            self.commands.append("".join(self._pre))
            self._pre = None


def parse(path: Path) -> Report:
    report = Report()
    report.feed(path.read_text())
    return report


def row_of(report: Report, first_cell: str) -> list[str]:
    for table in report.tables:
        for row in table:
            if row and row[0] == first_cell:
                return row
    raise AssertionError(f"no table row starts with {first_cell!r}")


def test_demo_pipeline_proves_ownership_and_judges_attacks(tiny_demo):
    run, results = tiny_demo
    assert results["model"]["test_accuracy"] > 0.9
    assert results["watermark"]["private"]["accepted"] and results["watermark"]["public"]["accepted"]
    assert results["proof"]["reference"]["accepted"] and results["proof"]["hardened"]["accepted"]
    assert [a["label"] for a in results["attacks"]] == ["ftll", "piracy-ftal", "prune-0.6"]
    assert [s["strength"] for s in results["sweeps"]] == [0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
    spoof = results["spoofs"][0]
    assert spoof["method"] == "infinitesimal" and spoof["reference"]["accepted"] and not spoof["hardened"]["accepted"]
    assert spoof["reference"]["replays"] and spoof["hardened"]["profile"]
    assert json.loads((run / "results.json").read_text()) == json.loads(json.dumps(results))
    for path in ("keys/private/verification_key.json", "proof/proof.json", "model/model.json", "statement.json"):
        assert (run / path).is_file()
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]  # no partial directory left behind


def test_verdict_and_tables_are_the_results(tiny_demo):
    run, results = tiny_demo
    report = parse(run / "report.html")
    assert report.verdict == [c.sentence for c in demo_claims(results)]
    assert report.verdict[0].startswith("Ownership proven by watermark and proof-of-learning")
    removed = [a["label"] for a in results["attacks"] if a["watermark_removed"]]
    attacks_line = next(s for s in report.verdict if "attack" in s and "piracy (" not in s)
    assert f"{len(removed)} of 3 attacks" in attacks_line or (not removed and "No attack removed" in attacks_line)
    assert (
        "the reference verifier accepted 1 of 1 forged proofs; the hardened verifier rejected 1 of 1"
        in (report.verdict[-1])
    )
    private = row_of(report, "private Verify (judge sees the key)")
    assert private[1] == "accepted" and private[3] == f"{results['watermark']['private']['agreements']} of 100"
    for attack in results["attacks"]:
        cells = row_of(report, attack["label"])
        assert float(cells[2]) == pytest.approx(100 * attack["test_accuracy_after"], abs=0.006)
    piracy = next(a for a in results["attacks"] if a["label"] == "piracy-ftal")
    pirate = piracy["details"]["pirate"]
    cells = row_of(report, "piracy-ftal")  # both marks: the owner's and the pirate's
    assert cells[3] == f"{100 * piracy['trigger_accuracy']:.0f} ({'accepted' if piracy['accepted'] else 'rejected'})"
    assert cells[4] == f"{100 * pirate['trigger_accuracy']:.0f} ({'accepted' if pirate['accepted'] else 'rejected'})"
    spoof = row_of(report, "infinitesimal")
    assert spoof[1:3] == ["accepted", "rejected"]
    assert spoof[4] != "0.00" and spoof[5] != "0.00"  # a small cost keeps its digits; none reads as zero
    assert len(report.images) >= 6 and all(i.startswith(b"\x89PNG") for i in report.images)


def test_evidence_names_the_files_beside_the_report(tiny_demo):
    run, results = tiny_demo
    evidence = results["evidence"]
    assert evidence["model"]["sha256"] == hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()
    assert evidence["keys"]["private"]["key_id"] == load_verification_key(run / "keys" / "private").key_id
    assert evidence["keys"]["public"]["key_id"] == load_verification_key(run / "keys" / "public").key_id
    assert evidence["proof"]["proof_id"] == load_proof(run / "proof")[1]
    assert evidence["statement"]["statement_id"] == load_statement(run / "statement.json").id
    # registered on the demo's own loopback log, in an owner's order: keys and statement before training
    registry = evidence["registry"]
    entries = registry["entries"]
    kinds = ["watermark-key", "watermark-key", "pol-statement", "pol-commitment", "model"]
    assert [e["kind"] for e in entries] == kinds
    assert [e["log_index"] for e in entries] == [0, 1, 2, 3, 4]
    assert [e["registered_at"] for e in entries] == sorted(e["registered_at"] for e in entries)
    log_key = load_log_key(run / registry["log_key"])
    for e in entries:
        receipt = load_receipt(run / e["receipt"])
        assert verify_receipt(receipt, log_key).valid and receipt.entry.digest == e["digest"]
    assert entries[2]["digest"] == evidence["statement"]["statement_id"]
    assert entries[3]["digest"] == load_commitment(run / "commitment.json").id
    assert not [t for t in threading.enumerate() if t.name == "local-registry"]  # nothing left running
    assert results["proof"]["hardened"]["accepted"] is True
    text = " ".join(parse(run / "report.html").text)
    for value in (evidence["model"]["sha256"], evidence["proof"]["proof_id"], results["machine"]["torch"],
                  entries[2]["registered_at"], entries[4]["receipt"], "pol-commitment"):  # fmt: skip
        assert value in text


def test_every_command_in_the_report_runs_and_exits_as_the_report_says(tiny_demo, tmp_path, capsys):
    run, results = tiny_demo
    commands = parse(run / "report.html").commands
    listed = [c for c in results["evidence"]["commands"] if c["argv"]]
    assert len(commands) == len(listed) >= 5
    for line, command in zip(commands, listed):
        argv = shlex.split(line)
        assert argv[0] == "modeldeed"
        argv = [a.replace(str(run / "audit"), str(tmp_path / "audit")) for a in argv[1:]]
        assert main([*argv, "--no-progress"] if argv[0] in ("pol", "attack") else argv) == command["expect"], line
    capsys.readouterr()


def test_a_second_run_never_writes_over_the_first(tiny_demo, tmp_path, capsys):
    run, _ = tiny_demo
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ModeldeedError, match="already holds files.*--force"):
        run_demo(run, DemoSetting(epochs=2, attacks=(), sweeps=(), spoof_methods=(), zk=False), progress=False)
    assert main(["demo", "--out", str(run), "--epochs", "2", "--no-progress", "--no-zk"]) == 2
    assert "--force" in capsys.readouterr().err
    # a forced run that fails (an unknown attack) leaves the earlier run as it was, and nothing half-written
    with pytest.raises(ModeldeedError, match="unknown suite attacks"):
        run_demo(run, DemoSetting(epochs=2, attacks=("nonsense",), zk=False), force=True, progress=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]
    assert main(["watermark", "verify", str(run / "model"), "--key", str(run / "keys" / "private")]) == 0
    capsys.readouterr()


def test_run_directory_swaps_in_a_complete_run_only(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("earlier run")
    with pytest.raises(ModeldeedError, match="already holds files"):
        RunDirectory(final)
    replacing = RunDirectory(final, force=True)
    (replacing.work / "new.txt").write_text("new run")
    assert (final / "old.txt").is_file()  # untouched until the new run is complete
    replacing.commit()
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    first, second = default_run_directory(tmp_path, now=0), None
    first.mkdir()
    second = default_run_directory(tmp_path, now=0)
    assert first.name == "run-19700101-000000" and second.name == "run-19700101-000000-2"


def test_report_command_renders_a_demo_directory(tiny_demo, tmp_path, capsys):
    run, results = tiny_demo
    out = tmp_path / "again.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    again = parse(out)
    assert again.verdict == [c.sentence for c in demo_claims(results)] and len(again.images) >= 6
    assert main(["report", str(run.parent)]) == 2
    assert f"pass one of them (e.g. {run})" in capsys.readouterr().err


def test_report_of_a_damaged_results_file_is_bad_input(tmp_path, capsys):
    doc = {"format": "modeldeed.demo", "version": 2, "setting": {}}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "Traceback" not in err


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
    fromscratch = rows[1]
    assert report.verdict[0].startswith("Functionality (Table 1): FROMSCRATCH ")
    assert f"({fromscratch['trigger_accuracy']:.0f} % of the triggers, test accuracy " in report.verdict[0]
    # the command the report gives runs the experiment again, and (the owner's models reused) finds the same rows
    (command,) = report.commands
    argv = shlex.split(command)[1:]
    assert argv[:2] == ["experiment", "functionality"] and "--train-limit" in argv
    assert main([*argv, "--no-progress"]) == 0
    assert json.loads((tmp_path / "functionality.json").read_text())["results"]["rows"] == rows
    capsys.readouterr()


def test_report_of_an_empty_directory_is_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results found" in capsys.readouterr().err
    with pytest.raises(ModeldeedError, match="results directory not found"):
        build_report(tmp_path / "absent")


VARYING = {"wall_seconds", "wall_time", "seconds", "started", "key_id", "private_key", "public_key", "created"}


def comparable(value):
    """Results without what differs between two identical runs: timings, dates, and key ids (a key id covers
    the key's creation time)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VARYING and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_demo_seed_repeats_the_whole_run(tmp_path):
    from modeldeed.watermark import load_marking_key

    setting = DemoSetting(
        epochs=2, seed=3, key_seed=3, attacks=("prune-0.6",), sweeps=(), spoof_methods=("infinitesimal",), zk=False
    )
    first = run_demo(tmp_path / "a", setting, progress=False)
    second = run_demo(tmp_path / "b", setting, progress=False)
    # what the log adds differs by design: its clock, the owner's identity (from `secrets`), and the intervals
    # the log's beacon draws for the hardened replay (one draw per registration, unknown before it)
    for results in (first, second):
        registry = results["evidence"]["registry"]
        assert registry.pop("submitter") and all(e.pop("registered_at") for e in registry["entries"])
        commands = results["evidence"]["commands"]
        assert sum(c.pop("claim").startswith("registration of") for c in commands) == 5
        hardened = results["proof"]["hardened"]
        assert hardened.pop("replays") and hardened.pop("replayed_intervals") >= 1
    assert comparable(first) == comparable(second)
    assert first["evidence"]["demonstration_keys"] and first["evidence"]["key_seed"] == 3
    a, b = load_marking_key(tmp_path / "a" / "keys" / "private"), load_marking_key(tmp_path / "b" / "keys" / "private")
    assert a.images.equal(b.images) and a.labels.equal(b.labels)
    assert "for demonstration only" in " ".join(parse(tmp_path / "a" / "report.html").verdict)


def test_the_report_says_when_and_why_the_zero_knowledge_step_did_not_run(tiny_demo, monkeypatch):
    from modeldeed.cli.demo_cmd import summary
    from modeldeed.experiments.demo import zk_skip_reason

    run, results = tiny_demo
    assert results["zk"] == {"skipped": "left out on request (demo --no-zk)"}
    assert "Zero-knowledge public verification left out on request (demo --no-zk)." in (run / "report.html").read_text()
    assert "watermark, zero-knowledge (mlp)" in summary(results) and "skipped" in summary(results)
    monkeypatch.setenv("MODELDEED_NODE", "/nonexistent/node")  # no Node.js: the default run says so, --zk fails
    reason = zk_skip_reason(DemoSetting())
    assert reason is not None and reason.startswith("skipped: ") and "Node.js" in reason
    with pytest.raises(ModeldeedError, match="demo --zk: .*Node.js"):
        zk_skip_reason(DemoSetting(zk=True))
