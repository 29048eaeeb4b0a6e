"""Figures in the papers' forms (grouped bars as in Adi Figs. 6 and 7, error curves for PoL), and the check that
no two pieces of text in a figure overlap.

Every figure is drawn for a page about 1,000 px wide: 100 dpi, at most 10.5 inches wide, 9-point text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DPI = 100
MAX_WIDTH_INCHES = 10.5
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede the pyplot import
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def drawn_texts(fig: Any) -> list[tuple[str, Any]]:
    """(text, window extent) of every piece of text the figure draws; a legend counts as one box."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found: list[Any] = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks inside the view, i.e. those drawn
                found += [label for label in (tick.label1, tick.label2) if label.get_visible()]
            found += [axis.label, axis.get_offset_text()]
        found += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.get_legend() is not None:
            found.append(ax.get_legend())
    found += [*fig.texts, *fig.legends]
    if getattr(fig, "_suptitle", None) is not None:
        found.append(fig._suptitle)
    boxes = []
    for artist in found:
        is_text = hasattr(artist, "get_text")
        if not artist.get_visible() or (is_text and not artist.get_text().strip()):
            continue
        label = artist.get_text() if is_text else "legend"
        boxes.append((label, artist.get_window_extent(renderer)))
    return boxes


def text_overlaps(fig: Any, min_area: float = 2.0) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap by more than `min_area` square pixels."""
    boxes = drawn_texts(fig)
    clashes = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if width > 0 and height > 0 and width * height > min_area:
                clashes.append((a, b))
    return clashes


def assert_no_text_overlap(fig: Any) -> None:
    """Raise AssertionError naming the texts that overlap (tests call it on every figure the report makes)."""
    clashes = text_overlaps(fig)
    if clashes:
        raise AssertionError(f"{len(clashes)} overlapping texts in the figure, e.g. {clashes[:5]}")


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = (0, 100),
) -> Any:
    """One cluster of bars per group, one bar per series (missing values are left out)."""
    plt = pyplot()
    width_in = min(MAX_WIDTH_INCHES, max(5.0, 0.55 * len(groups) * max(1, len(series)) + 2.5))
    fig, ax = plt.subplots(figsize=(width_in, 3.6))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        pairs = [(x, v) for x, v in zip(xs, values) if v is not None]
        if pairs:
            bars = ax.bar([p[0] for p in pairs], [p[1] for p in pairs], width, label=name)
            ax.bar_label(bars, fmt="%.0f" if ylim == (0, 100) else "%.2g", fontsize=7, padding=1)
    ax.set_xticks(
        range(len(groups)), groups, rotation=30 if len(groups) > 6 else 0, ha="right" if len(groups) > 6 else "center"
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(ylim[0], ylim[1] * 1.08)  # headroom for the value labels
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never over the bars
    ax.grid(axis="y", alpha=0.3)
    return fig


def curves(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
) -> Any:
    """Lines over a shared x axis, with optional horizontal thresholds (named in the legend)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, ys in series.items():
        ax.plot(list(xs)[: len(ys)], list(ys), marker="o", markersize=3, label=name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", color="grey", linewidth=1, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return fig
