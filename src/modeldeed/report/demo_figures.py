"""The demo report's figures, each a function of plain results (and, for the trigger grid, the key's images).

trigger_grid       the trigger set with its committed labels, coloured by whether the model answers them
attack_accuracy    test and trigger accuracy after each attack, the acceptance thresholds, removals marked
strength_curves    accuracy against attack strength (Adi et al. Fig. 6 style; WRT's sweeps)
replay_errors      PoL replay error of every replayed interval against delta, honest vs each spoof (log scale)
update_profiles    the size of every interval's update, honest vs each spoof (log scale)
spoof_costs        what each spoof cost against honest training
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .figures import MAX_WIDTH_INCHES, pyplot
from .verdict import MAX_DROP_POINTS

TEST, TRIGGER, PIRATE = "#1f77b4", "#ff7f0e", "#9467bd"
GOOD, BAD = "#0a6d0a", "#b00020"


def trigger_grid(
    images: np.ndarray, labels: Sequence[int], predictions: Sequence[int] | None, classes: Sequence[str]
) -> Any:
    """Every trigger image (N×C×H×W in [0, 1]) with its committed label above it; green where the model's
    answer is that label, red where it is not (black without predictions). One mosaic in one axes: a hundred
    small axes would take seconds to draw."""
    plt = pyplot()
    n = len(labels)
    names = [str(classes[int(label)]) for label in labels]
    names = [name if len(name) <= 12 else name[:11] + "…" for name in names]
    cols = 20 if max((len(name) for name in names), default=1) <= 3 else 10
    rows = math.ceil(n / cols)
    channels, height, width = images.shape[1:]
    gap_x, gap_y = max(1, width // 4), max(3, height // 2)  # room between cells, and above each for its label
    mosaic = np.ones((rows * (height + gap_y), cols * (width + gap_x) - gap_x, channels))
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = r * (height + gap_y) + gap_y, c * (width + gap_x)
        mosaic[y : y + height, x : x + width] = np.transpose(np.asarray(images[i], dtype=float), (1, 2, 0))
    cell = MAX_WIDTH_INCHES * 0.95 / cols
    fig, ax = plt.subplots(figsize=(cols * cell, rows * cell * (height + gap_y) / (width + gap_x) + 0.1))
    shown = mosaic[:, :, 0] if channels == 1 else mosaic
    ax.imshow(shown, cmap="gray" if channels == 1 else None, vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    from matplotlib.patches import Rectangle

    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        x0, y0 = c * (width + gap_x) - 0.5, r * (height + gap_y) + gap_y - 0.5
        ax.add_patch(Rectangle((x0, y0), width, height, fill=False, edgecolor="#999999", linewidth=0.8))
        colour = "black" if predictions is None else (GOOD if int(predictions[i]) == int(labels[i]) else BAD)
        ax.text(
            c * (width + gap_x) + width / 2,
            r * (height + gap_y) + gap_y - 0.8,
            name,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
        )
    ax.set_axis_off()
    fig.subplots_adjust(left=0, right=1, top=1, bottom=0)
    return fig


def attack_accuracy(attacks: list[dict[str, Any]], trigger_threshold: float, test_before: float) -> Any:
    """Horizontal bars: test and trigger accuracy (%) after each attack; the owner's Verify threshold and the
    5-point accuracy limit as lines; removed attacks named in red with "removed"."""
    plt = pyplot()
    n = len(attacks)
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_INCHES * 0.85, 0.42 * n + 1.5))
    y = np.arange(n)[::-1].astype(float)
    test = [100 * a["test_accuracy_after"] for a in attacks]
    trigger = [100 * a["trigger_accuracy"] for a in attacks]
    height = 0.38
    for values, offset, colour, name in (
        (test, height / 2, TEST, "test accuracy"),
        (trigger, -height / 2, TRIGGER, "trigger accuracy (owner's key)"),
    ):
        bars = ax.barh(y + offset, values, height, color=colour, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax.axvline(
        100 * trigger_threshold,
        color=TRIGGER,
        linestyle="--",
        linewidth=1.2,
        label=f"Verify accepts at ≥ {100 * trigger_threshold:.0f} % trigger accuracy",
    )
    ax.axvline(
        100 * test_before - MAX_DROP_POINTS,
        color=TEST,
        linestyle=":",
        linewidth=1.2,
        label=f"removal counts only above {100 * test_before - MAX_DROP_POINTS:.1f} % test accuracy",
    )
    ax.set_yticks(y, [a["label"] + (" — removed" if a["watermark_removed"] else "") for a in attacks])
    for tick, a in zip(ax.get_yticklabels(), attacks):
        if a["watermark_removed"]:
            tick.set_color(BAD)
            tick.set_fontweight("bold")
    ax.set_xlim(0, 112)
    ax.set_xlabel("accuracy after the attack (%)")
    ax.set_title("After each removal attack: is the owner's watermark still there?")
    ax.grid(axis="x", alpha=0.3)
    return _legend_below(fig, ax, ncol=2)


def strength_curves(sweeps: list[dict[str, Any]], trigger_threshold: float, test_before: float) -> Any:
    """One panel per swept attack: test and trigger accuracy against strength, removals marked with a red ×."""
    plt = pyplot()
    names = list(dict.fromkeys(s["attack"] for s in sweeps))
    fig, axes = plt.subplots(1, len(names), figsize=(MAX_WIDTH_INCHES * 0.95, 3.4), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = sorted((s for s in sweeps if s["attack"] == name), key=lambda s: s["strength"])
        xs = [p["strength"] for p in points]
        ax.plot(xs, [100 * p["test_accuracy_after"] for p in points], marker="o", color=TEST, label="test accuracy")
        ax.plot(xs, [100 * p["trigger_accuracy"] for p in points], marker="s", color=TRIGGER, label="trigger accuracy")
        removed = [p for p in points if p["watermark_removed"]]
        if removed:
            ax.scatter(
                [p["strength"] for p in removed],
                [100 * p["trigger_accuracy"] for p in removed],
                marker="x",
                s=90,
                color=BAD,
                zorder=5,
                label="watermark removed",
            )
        ax.axhline(100 * trigger_threshold, color=TRIGGER, linestyle="--", linewidth=1, label="Verify threshold")
        ax.axhline(
            100 * test_before - MAX_DROP_POINTS,
            color=TEST,
            linestyle=":",
            linewidth=1,
            label=f"test accuracy − {MAX_DROP_POINTS:g} points",
        )
        ax.set_ylim(-3, 105)
        ax.set_xlabel(points[0]["parameter"])
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("accuracy (%)")
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _proof_rows(proofs: list[tuple[str, dict[str, Any]]], key: str) -> list[tuple[str, list[float]]]:
    rows = []
    for name, verdict in proofs:
        values = [r[key].get("l2") for r in verdict.get("replays", [])]
        rows.append((name, [float(v) for v in values if isinstance(v, (int, float))]))
    return rows


def replay_errors(
    reference: list[tuple[str, dict[str, Any]]], hardened: list[tuple[str, dict[str, Any]]], max_relative: float
) -> Any:
    """Two panels, one dot per replayed interval (l2, log scale): the reference verifier's error / d_ref against
    its delta, and the hardened verifier's error / the interval's own update against its bound."""
    plt = pyplot()
    panels = [
        ("Reference verifier: error / d_ref", _proof_rows(reference, "normalised_error"), _delta(reference)),
        ("Hardened verifier: error / update size", _proof_rows(hardened, "relative_error"), max_relative),
    ]
    names = [name for name, _ in reference]
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_INCHES * 0.95, 0.45 * len(names) + 1.9), sharey=True)
    positives = [v for _, rows, _ in panels for _, values in rows for v in values if v > 0]
    floor = 10 ** math.floor(math.log10(min(positives) / 100)) if positives else 1e-6
    for ax, (title, rows, bound) in zip(axes, panels):
        for i, (_, values) in enumerate(rows):
            y = len(rows) - 1 - i
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(len(values))
            exact = [v == 0 for v in values]
            xs = [floor if z else v for v, z in zip(values, exact)]
            ok = [v for v, z in zip(xs, exact) if not z]
            ax.scatter(ok, y + jitter[[not z for z in exact]], s=14, color=TEST if i == 0 else BAD, alpha=0.7)
            zeros = [v for v, z in zip(xs, exact) if z]
            if zeros:
                ax.scatter(zeros, y + jitter[exact], s=18, facecolors="none", edgecolors=GOOD)
        if bound:
            ax.axvline(bound, color="black", linestyle="--", linewidth=1.2)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names[::-1])
    delta = _delta(reference)
    axes[0].set_xlabel("replay error / d_ref (l2)" + (f"; dashed: δ = {delta:g}" if delta else ""))
    axes[1].set_xlabel(f"replay error / update size (l2); dashed: bound {max_relative:g}")
    fig.text(
        0.5,
        0.01,
        f"hollow green: exactly 0 (a bit-identical replay), drawn at {floor:.0e}",
        ha="center",
        fontsize=8,
        color=GOOD,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _delta(proofs: list[tuple[str, dict[str, Any]]]) -> float | None:
    for _, verdict in proofs:
        for r in verdict.get("replays", []):
            value = (r.get("normalised_delta") or {}).get("l2")
            if isinstance(value, (int, float)):
                return float(value)
    return None


def update_profiles(proofs: list[tuple[str, dict[str, Any], str | None]]) -> Any:
    """One panel per proof: the l2 size of each interval's update against its step (log scale, shared), titled
    with the hardened update-profile check's outcome."""
    plt = pyplot()
    cols = 3
    rows = math.ceil(len(proofs) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(MAX_WIDTH_INCHES * 0.95, 2.5 * rows + 0.3), sharey=True, squeeze=False
    )
    for ax in axes.flat[len(proofs) :]:
        ax.set_visible(False)
    for ax, (name, verdict, status) in zip(axes.flat, proofs):
        profile = verdict.get("profile", [])
        steps = [p["end_step"] for p in profile]
        sizes = [max(p["l2"], 1e-12) for p in profile]
        ax.plot(steps, sizes, marker=".", markersize=4, linewidth=1, color=TEST if name == "honest" else BAD)
        ax.set_yscale("log")
        suffix = f" — profile check {status}" if status else ""
        ax.set_title(f"{name}{suffix}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    for ax in axes[:, 0]:
        ax.set_ylabel("update size (l2)")
    fig.tight_layout()
    return fig


def spoof_costs(spoofs: list[dict[str, Any]]) -> Any:
    """Horizontal bars: each spoof's cost / honest training's, in gradient evaluations and in wall time."""
    plt = pyplot()
    n = len(spoofs)
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_INCHES * 0.8, 0.5 * n + 1.6))
    y = np.arange(n)[::-1].astype(float)
    height = 0.38
    top = 1.0
    for key, offset, colour, name in (
        ("gradient_evaluations", height / 2, TEST, "gradient evaluations"),
        ("wall_time", -height / 2, TRIGGER, "wall time"),
    ):
        values = [(s.get("cost_ratio") or {}).get(key) for s in spoofs]
        shown = [v if isinstance(v, (int, float)) else 0.0 for v in values]
        top = max([top, *shown])
        bars = ax.barh(y + offset, shown, height, color=colour, label=name)
        ax.bar_label(bars, labels=[_ratio(v) for v in values], fontsize=7, padding=2)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1.2, label="honest training = 1")
    ax.set_xlim(0, top * 1.2)
    ax.set_yticks(y, [s["method"] for s in spoofs])
    ax.set_xlabel("spoof cost / honest training cost")
    ax.set_title("What forging a proof cost, against training honestly")
    ax.grid(axis="x", alpha=0.3)
    return _legend_below(fig, ax, ncol=3)


def _legend_below(fig: Any, ax: Any, *, ncol: int) -> Any:
    """The axes' legend under the figure, outside the plot, with room made for it."""
    handles, labels = ax.get_legend_handles_labels()
    rows = math.ceil(len(labels) / ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(rect=(0, (0.25 * rows + 0.1) / fig.get_figheight(), 1, 1))
    return fig


def _ratio(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"
