"""Render experiment results (the JSON files in a directory) as one self-contained HTML report."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FormatError, ModeldeedError, file_error
from ..files import read_json_object, write_bytes_atomic
from ..schema import validate_document
from . import papers
from .figures import grouped_bars
from .html import Page
from .results import ExperimentDocument
from .verdict import experiment_claims

MAX_RESULTS_BYTES = 64 << 20

EXPERIMENT_ORDER = ("functionality", "unremovability", "piracy", "transfer", "pol")


def load_results(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Every `<experiment>.json` written by `modeldeed experiment` in `directory`, by experiment name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise file_error(ModeldeedError, directory, "results directory not found")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        doc = read_json_object(path, within=directory, max_bytes=MAX_RESULTS_BYTES)
        if doc.get("format") != "modeldeed.experiment":
            continue  # other JSON beside the results (an attack suite's, a demo's) is not ours to read
        record = validate_document(ExperimentDocument, doc, path)
        found[record.experiment] = {**doc, "source": str(path)}
    return found


def build_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` (or `out`) for the results in `directory`: a demo run's results.json, or the
    experiments' *.json; return its path."""
    directory = Path(directory)
    demo = demo_results(directory)
    if demo is not None:
        from .demo import build_demo_report

        try:
            return build_demo_report(demo, Path(out) if out else directory / "report.html", files=directory)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problem = f"missing field {exc}" if isinstance(exc, KeyError) else f"malformed ({exc})"
            raise file_error(
                FormatError, directory / "results.json", f"not a complete demo results file: {problem}"
            ) from None
    results = load_results(directory)
    if not results:
        runs = sorted(p.parent.name for p in directory.glob("*/results.json"))
        hint = f"; it holds demo runs, pass one of them (e.g. {directory / runs[-1]})" if runs else ""
        raise ModeldeedError(
            f"{directory}: no results found (results.json of `modeldeed demo`, or *.json of `modeldeed experiment`)"
            + hint
        )
    page = Page("modeldeed — the papers' experiments, reproduced")
    try:
        page.verdict([(c.holds, c.sentence) for c in experiment_claims(results)])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModeldeedError(f"{directory}: an experiment file lacks a field the report needs ({exc})") from None
    page.paragraph(
        "Our numbers beside the papers' published ones. Accuracies in percent. Each section states the "
        "dataset, model, epochs and seed it ran with; see docs/reproduction.md for what differs at this scale.",
        css="note",
    )
    evidence_section(page, results, directory)
    for name in sorted(results, key=lambda n: EXPERIMENT_ORDER.index(n) if n in EXPERIMENT_ORDER else 99):
        section = SECTIONS.get(name)
        if section is None:
            continue
        doc = results[name]
        page.heading(TITLES[name])
        page.paragraph(describe_setting(doc), css="note")
        try:
            section(page, doc["results"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            problem = f"missing entry {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise file_error(
                FormatError, doc["source"], f"'results' do not have the layout of a {name} experiment ({problem})"
            ) from None
        for note in doc.get("notes") or []:
            page.paragraph(f"Note from the run: {note}", css="note")
    path = Path(out) if out else directory / "report.html"
    write_bytes_atomic(path, page.render().encode())
    return path


def demo_results(directory: Path) -> dict[str, Any] | None:
    """The results.json of a demo run in `directory`, or None when there is none."""
    path = directory / "results.json"
    if not path.is_file():
        return None
    doc = read_json_object(path)
    if doc.get("format") != "modeldeed.demo":
        return None
    if doc.get("version") != 2:
        raise file_error(
            FormatError,
            path,
            f"demo results version {doc.get('version')!r}; this modeldeed renders version 2 (run the demo again)",
        )
    return doc


def evidence_section(page: Page, results: dict[str, dict[str, Any]], directory: Path) -> None:
    """The software and machine of each run, and the command that runs each experiment again."""
    page.heading("Evidence")
    rows = []
    for name, doc in results.items():
        m = doc.get("machine", {})
        rows.append(
            [
                name,
                m.get("modeldeed"),
                m.get("torch"),
                m.get("python"),
                m.get("cuda") or f"CPU, {m.get('threads')} threads",
                doc.get("seconds"),
            ]
        )
    page.table(["experiment", "modeldeed", "torch", "Python", "device", "seconds"], rows)
    page.paragraph(
        "Each experiment again, with the setting it recorded (the owner's models are trained once per directory "
        "and reused; the keys are new, so trigger accuracies of models without the watermark vary by chance):",
        css="note",
    )
    for name in sorted(results, key=lambda n: EXPERIMENT_ORDER.index(n) if n in EXPERIMENT_ORDER else 99):
        page.code(experiment_command(name, results[name], directory))


def experiment_command(name: str, doc: dict[str, Any], directory: Path) -> str:
    """The `modeldeed experiment` line that reproduces `doc` (shell-quoted: the values come from a file)."""
    s = doc.get("setting", {})
    argv = ["experiment", name, "--data", str(s.get("data"))]
    if s.get("data_dir"):
        argv += ["--data-dir", str(s["data_dir"])]
    for option, key in (
        ("--model", "model"),
        ("--epochs", "epochs"),
        ("--batch-size", "batch_size"),
        ("--lr", "lr"),
        ("--seed", "seed"),
        ("--trigger-size", "trigger_size"),
        ("--triggers-per-batch", "triggers_per_batch"),
        ("--train-limit", "train_limit"),
    ):
        if s.get(key) is not None:
            argv += [option, f"{s[key]:g}" if isinstance(s[key], float) else str(s[key])]
    if s.get("device") not in (None, "cpu"):
        argv += ["--device", str(s["device"])]
    attack_epochs = (doc.get("results", {}).get("attack_settings") or {}).get("epochs")
    if attack_epochs is not None and attack_epochs != s.get("epochs"):
        argv += ["--attack-epochs", str(attack_epochs)]
    if name == "transfer":
        rows = doc.get("results", {}).get("rows") or [{}]
        target = str(rows[0].get("transfer", "")).rpartition("→ ")[2]
        if target:
            argv += ["--target", target]
    threads = doc.get("machine", {}).get("threads")
    if threads:
        argv += ["--threads", str(threads)]
    argv += ["--out", str(directory)]
    return "modeldeed " + " ".join(shlex.quote(a) for a in argv)


def describe_setting(doc: dict[str, Any]) -> str:
    s, m = doc.get("setting", {}), doc.get("machine", {})
    return (
        f"Data {s.get('data')}, model {s.get('model')}, {s.get('epochs')} epochs, batch {s.get('batch_size')}, "
        f"seed {s.get('seed')}, |T| = {s.get('trigger_size')}; torch {m.get('torch')} on "
        f"{m.get('cuda') or str(m.get('threads')) + ' CPU threads'}; {doc.get('seconds')} s."
    )


def functionality_section(page: Page, results: dict[str, Any]) -> None:
    rows = results["rows"]
    table = []
    for row in rows:
        c10, c100 = papers.ADI_TABLE1["cifar10"][row["model"]], papers.ADI_TABLE1["cifar100"][row["model"]]
        table.append(
            [
                row["model"],
                row["test_accuracy"],
                row["trigger_accuracy"],
                row["accepted"],
                c10[0],
                c10[1],
                c100[0],
                c100[1],
            ]
        )
    page.table(
        [
            "model",
            "ours: test",
            "ours: trigger",
            "verified",
            "paper CIFAR-10: test",
            "paper CIFAR-10: trigger",
            "paper CIFAR-100: test",
            "paper CIFAR-100: trigger",
        ],
        table,
    )
    page.figure(
        grouped_bars(
            [r["model"] for r in rows],
            {
                "test set": [r["test_accuracy"] for r in rows],
                "trigger set": [r["trigger_accuracy"] for r in rows],
            },
            ylabel="accuracy (%)",
            title="Functionality (Adi et al. Table 1)",
        ),
        "Test-set and trigger-set accuracy of a model without watermark and of both embeddings.",
    )


def unremovability_section(page: Page, results: dict[str, Any]) -> None:
    rows = results["rows"]
    page.table(
        ["embedding", "attack", "test", "trigger (attacker's head)", "trigger (original head)", "verified", "removed"],
        [
            [
                r["embedding"],
                r["attack"],
                r["test_accuracy"],
                r["trigger_accuracy"],
                r["trigger_accuracy_original_head"],
                r["accepted"],
                r["watermark_removed"],
            ]
            for r in rows
        ],
    )
    for embedding in ("FROMSCRATCH", "PRETRAINED"):
        mine = [r for r in rows if r["embedding"] == embedding]
        if not mine:
            continue
        page.figure(
            grouped_bars(
                [r["attack"] for r in mine],
                {
                    "test set": [r["test_accuracy"] for r in mine],
                    "trigger, attacker's head": [r["trigger_accuracy"] for r in mine],
                    "trigger, original head (paper's view)": [r["trigger_accuracy_original_head"] for r in mine],
                },
                ylabel="accuracy (%)",
                title=f"Unremovability, {embedding} (Adi et al. Fig. 6)",
            ),
            f"{embedding}: accuracy after each fine-tuning. 'Original head' swaps the owner's last layer back in, "
            "as the paper's code does for every attack; a thief's model answers with the attacker's head.",
        )
    page.paragraph(f"Paper (Fig. 6, no printed values): {papers.ADI_FIG6_TEXT}", css="note")


def piracy_section(page: Page, results: dict[str, Any]) -> None:
    rows = results["rows"]
    page.table(
        ["fine-tuning after TS-NEW", "test", "TS-ORIG (owner)", "owner verified", "TS-NEW (pirate)", "pirate verified"],
        [
            [
                r["fine_tuning"],
                r["test_accuracy"],
                r["ts_orig_accuracy"],
                r["ts_orig_accepted"],
                r["ts_new_accuracy"],
                r["ts_new_accepted"],
            ]
            for r in rows
        ],
    )
    page.figure(
        grouped_bars(
            [r["fine_tuning"] for r in rows],
            {
                "test set": [r["test_accuracy"] for r in rows],
                "TS-NEW": [r["ts_new_accuracy"] for r in rows],
                "TS-ORIG": [r["ts_orig_accuracy"] for r in rows],
            },
            ylabel="accuracy (%)",
            title="Ownership piracy (Adi et al. Fig. 7)",
        ),
        "A pirate embeds a second trigger set (TS-NEW) into the FROMSCRATCH model, then fine-tunes.",
    )
    page.paragraph(f"Paper (Fig. 7, no printed values): {papers.ADI_FIG7_TEXT}", css="note")


def transfer_section(page: Page, results: dict[str, Any]) -> None:
    table = [
        [r["transfer"], r["target_test_accuracy"], r["trigger_accuracy_original_head"], r["accepted"]]
        for r in results["rows"]
    ]
    table += [[f"paper: {name}", test, trig, None] for name, (test, trig) in papers.ADI_TABLE2.items()]
    page.table(["transfer (RTAL, new head)", "target test", "trigger (original head)", "verified"], table)


def pol_section(page: Page, results: dict[str, Any]) -> None:
    from .pol_section import render_pol

    render_pol(page, results)


SECTIONS: dict[str, Callable[[Page, dict[str, Any]], None]] = {
    "functionality": functionality_section,
    "unremovability": unremovability_section,
    "piracy": piracy_section,
    "transfer": transfer_section,
    "pol": pol_section,
}
TITLES = {
    "functionality": "Functionality preserving (Adi et al., Table 1)",
    "unremovability": "Unremovability under fine-tuning (Adi et al., Fig. 6)",
    "piracy": "Ownership piracy (Adi et al., Fig. 7)",
    "transfer": "Transfer learning (Adi et al., Table 2 analogue)",
    "pol": "Proof-of-learning: honest against spoofed (Jia et al.; Zhang et al.)",
}
