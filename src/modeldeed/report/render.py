"""Render experiment results (the JSON files in a directory) as one self-contained HTML report."""

from __future__ import annotations

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
    """Write `report.html` (or `out`) for the experiments found in `directory`; return its path."""
    results = load_results(directory)
    if not results:
        raise ModeldeedError(f"{directory}: no experiment results (*.json from `modeldeed experiment`) found")
    page = Page("modeldeed — the papers' experiments, reproduced")
    page.paragraph(
        "Our numbers beside the papers' published ones. Accuracies in percent. Each section states the "
        "dataset, model, epochs and seed it ran with; see docs/reproduction.md for what differs at this scale.",
        css="note",
    )
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
    path = Path(out) if out else Path(directory) / "report.html"
    write_bytes_atomic(path, page.render().encode())
    return path


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
