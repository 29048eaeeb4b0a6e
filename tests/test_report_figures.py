"""Every figure of the demo report, drawn from real results and from the largest inputs the demo can produce
(every suite attack, every sweep, every spoof): no two texts overlap, and each fits a 1,100 px column."""

from __future__ import annotations

import copy
import io
import struct

import pytest

from modeldeed.attacks import default_suite
from modeldeed.experiments.demo_attacks import SWEEPS
from modeldeed.report import demo_figures
from modeldeed.report.demo import trigger_images
from modeldeed.report.figures import DPI, assert_no_text_overlap, grouped_bars, pyplot, text_overlaps


def natural_width(fig) -> int:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    pyplot().close(fig)
    return struct.unpack(">II", buffer.getvalue()[16:24])[0]


def checked(fig) -> int:
    assert_no_text_overlap(fig)
    width = natural_width(fig)
    assert 300 <= width <= 1100
    return width


def test_the_overlap_check_finds_overlapping_text():
    fig, ax = pyplot().subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    assert text_overlaps(fig) == [("first label", "second label")]
    with pytest.raises(AssertionError, match="overlapping texts"):
        assert_no_text_overlap(fig)
    pyplot().close(fig)


def every_attack(results: dict) -> list[dict]:
    """One row per suite label (the whole suite: 26 attacks), cycling through the real rows' numbers."""
    real = results["attacks"]
    rows = []
    for i, entry in enumerate(default_suite()):
        row = copy.deepcopy(real[i % len(real)])
        row["label"] = entry.label
        rows.append(row)
    return rows


def every_sweep(results: dict) -> list[dict]:
    real = results["sweeps"]
    rows = []
    for sweep in SWEEPS.values():
        for i, strength in enumerate(sweep.strengths):
            row = copy.deepcopy(real[i % len(real)])
            row.update(attack=sweep.attack, parameter=sweep.parameter, strength=strength)
            rows.append(row)
    return rows


def test_demo_figures_have_no_overlapping_text(tiny_demo):
    run, results = tiny_demo
    private = results["watermark"]["private"]
    threshold, before = private["threshold"] / private["triggers"], results["attacks"][0]["test_accuracy_before"]
    images, labels, classes = trigger_images(run)
    checked(demo_figures.trigger_grid(images, labels, private["trigger_predictions"], classes))
    checked(demo_figures.attack_accuracy(results["attacks"], threshold, before))
    checked(demo_figures.attack_accuracy(every_attack(results), threshold, before))
    checked(demo_figures.strength_curves(results["sweeps"], threshold, before))
    checked(demo_figures.strength_curves(every_sweep(results), threshold, before))
    proof, spoof = results["proof"], results["spoofs"][0]
    methods = ("zhang1", "zhang2", "zhang3", "infinitesimal", "blindfold")
    spoofs = [{**copy.deepcopy(spoof), "method": m} for m in methods]
    reference = [("honest", proof["reference"])] + [(s["method"], s["reference"]) for s in spoofs]
    hardened = [("honest", proof["hardened"])] + [(s["method"], s["hardened"]) for s in spoofs]
    checked(demo_figures.replay_errors(reference, hardened, 0.1))
    profiles = [("honest", proof["hardened"], "passed")] + [(s["method"], s["hardened"], "failed") for s in spoofs]
    checked(demo_figures.update_profiles(profiles))
    checked(demo_figures.update_profiles(profiles[:2]))
    costs = [
        {**s, "cost_ratio": {"gradient_evaluations": r, "wall_time": r and r * 1.1}}
        for s, r in zip(spoofs, (2.07, 1.15, 0.25, 0.0, 0.0044))
    ]
    checked(demo_figures.spoof_costs(costs))


def test_trigger_grid_labels_long_class_names_without_overlap(tiny_demo):
    run, results = tiny_demo
    images, labels, _ = trigger_images(run)
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    checked(demo_figures.trigger_grid(images, labels, None, names))


def test_experiment_bars_have_no_overlapping_text():
    groups = ["none", "FTLL", "FTAL", "RTLL", "RTAL", "piracy", "transfer", "fine-prune"]
    checked(
        grouped_bars(
            groups,
            {"test set": [98.0] * 8, "trigger": [100.0] * 8, "original head": [50.0] * 8},
            ylabel="accuracy (%)",
            title="Unremovability",
        )
    )
