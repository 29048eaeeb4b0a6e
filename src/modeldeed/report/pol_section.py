"""The PoL section of the experiments report: honest vs spoofed reproduction errors, and spoof cost."""

from __future__ import annotations

from typing import Any

from . import papers
from .figures import grouped_bars
from .html import Page


def render_pol(page: Page, results: dict[str, Any]) -> None:
    honest = results["honest"]
    cal = honest["calibration"]
    page.table(
        [
            "metric",
            "ε_repr (other thread count)",
            "d_ref (independent run)",
            "ε_repr / d_ref",
            "proposed δ / d_ref",
            "paper: honest error / d_ref",
            "paper: δ / d_ref",
        ],
        [
            [
                m,
                cal["epsilon_repr"][m],
                cal["d_ref"][m],
                _ratio(cal["epsilon_repr"][m], cal["d_ref"][m]),
                cal["normalised_delta"][m],
                papers.POL_HONEST_NORMALISED_ERROR.get(m),
                papers.POL_NORMALISED_DELTA,
            ]
            for m in cal["metrics"]
        ],
        caption="Honest proof: reproduction error across thread counts against the distance between two runs.",
    )
    rows = [
        [
            "honest",
            honest["steps"],
            None,
            honest["reference"]["accepted"],
            honest["hardened"]["accepted"],
            ", ".join(honest["hardened"]["failed"]) or "none",
            _get(honest["reference"], "l2"),
            None,
            None,
        ]
    ]
    for s in results["spoofs"]:
        ratio = s.get("cost_ratio") or {}
        hardened = s.get("hardened") or {}
        rows.append(
            [
                s["method"],
                s["steps"],
                s["length"],
                s["reference"]["accepted"],
                hardened.get("accepted"),
                ", ".join(hardened.get("failed", [])) or "none",
                _get(s["reference"], "l2"),
                ratio.get("gradient_evaluations"),
                ratio.get("wall_time"),
            ]
        )
    page.table(
        [
            "proof",
            "steps",
            "length",
            "reference accepts",
            "hardened accepts",
            "hardened checks failed",
            "max normalised l2 error",
            "cost / honest (gradients)",
            "cost / honest (wall)",
        ],
        rows,
        caption="Every spoof judged by both policies.",
    )
    z = papers.ZHANG_SPOOF
    page.paragraph(
        f"Zhang et al. (CIFAR-10, ResNet-20, k = 100): {z['steps']} steps spoofed in about {z['seconds']} s "
        f"on a GPU with normalised errors about {z['normalised_error']}, below an honest proof's; about "
        f"{z['gradients_per_step']} gradient computations per crafted step.",
        css="note",
    )
    shortest = [s for s in results["spoofs"] if s["length"] == "shortest"]
    if shortest:
        page.figure(
            grouped_bars(
                ["honest"] + [s["method"] for s in shortest],
                {
                    "max normalised l2 error": [_get(honest["reference"], "l2")]
                    + [_get(s["reference"], "l2") for s in shortest],
                },
                ylabel="error / d_ref",
                title="Replay error, honest vs spoofed",
                ylim=None,
            ),
            "The largest replay error of each proof, as a fraction of d_ref (reference policy).",
        )
        page.figure(
            grouped_bars(
                [s["method"] for s in shortest],
                {
                    length: [
                        (s.get("cost_ratio") or {}).get("gradient_evaluations")
                        for s in results["spoofs"]
                        if s["length"] == length
                    ]
                    for length in ("shortest", "double")
                },
                ylabel="spoof / honest",
                title="Spoof cost relative to honest training (gradient evaluations)",
                ylim=None,
            ),
            "Below 1: cheaper than training honestly.",
        )


def _get(summary: dict[str, Any], metric: str) -> float | None:
    value = summary.get("max_normalised_error", {}).get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None
