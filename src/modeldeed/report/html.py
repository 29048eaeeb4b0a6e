"""A self-contained HTML page: headings, paragraphs, tables and PNG figures embedded as base64 (readable offline)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.yes { color: #0a6d0a; font-weight: 600; } td.no { color: #b00020; font-weight: 600; }
figure { margin: 1em 0; } figcaption { font-size: .9em; color: #555; }
.note { color: #555; font-size: .92em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


class Page:
    """Collects blocks of HTML in order; `render()` returns one complete document."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str | None = None) -> None:
        cls = f' class="{css}"' if css else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{html.escape(caption)}</caption>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(cell(v) for v in row) + "</tr>")
        parts.append("</table>")
        self.blocks.append("".join(parts))

    def figure(self, fig: Any, caption: str) -> None:
        """Embed a matplotlib figure as a PNG data URI and close it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode()
        self.blocks.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def render(self) -> str:
        body = "\n".join(self.blocks)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )


def cell(value: Any) -> str:
    """Booleans read as yes/no in colour; floats get 2 decimals; None is a dash."""
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if value is None:
        return "<td>–</td>"
    if isinstance(value, float):
        return f"<td>{value:.2f}</td>"
    return f"<td>{html.escape(str(value))}</td>"
