"""A self-contained HTML page: headings, paragraphs, tables and PNG figures embedded as base64 (readable offline).

Laid out for screens 1,000 to 1,400 px wide: the body is at most 1,100 px, figures scale down (never up) to fit
it, long cells and commands wrap instead of pushing the page sideways.
"""

from __future__ import annotations

import base64
import html
import io
import math
import struct
from collections.abc import Sequence
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; overflow-wrap: anywhere; }
th { background: #f0f0f0; overflow-wrap: normal; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; }
td.yes { color: #0a6d0a; font-weight: 600; } td.no { color: #b00020; font-weight: 600; }
figure { margin: 1em 0; } figcaption { font-size: .9em; color: #555; }
figure img { max-width: 100%; height: auto; display: block; }
.note { color: #555; font-size: .92em; }
code, pre { background: #f4f4f4; font-size: .88em; }
pre { padding: .4em .6em; white-space: pre-wrap; overflow-wrap: anywhere; margin: .2em 0 .8em; }
.verdict { border: 2px solid #444; padding: .6em 1em; margin: 1em 0; }
.verdict ul { margin: .3em 0; padding-left: 1.2em; } .verdict li { margin: .3em 0; }
.verdict li.good::marker { content: "✔  "; color: #0a6d0a; }
.verdict li.bad::marker { content: "✘  "; color: #b00020; }
.verdict li.neutral::marker { content: "•  "; }
dl.evidence { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dl.evidence dt { font-weight: 600; } dl.evidence dd { margin: 0; overflow-wrap: anywhere; font-family: monospace; }
"""


class Page:
    """Collects blocks of HTML in order; `render()` returns one complete document."""

    def __init__(self, title: str, *, content_security_policy: str | None = None) -> None:
        self.title = title
        self.blocks: list[str] = []
        self.content_security_policy = content_security_policy  # a page of a stranger's text: no scripts

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str | None = None) -> None:
        cls = f' class="{css}"' if css else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")

    def verdict(self, claims: Sequence[tuple[bool | None, str]]) -> None:
        """The verdict box: one sentence per claim, marked good (True), bad (False) or neither (None)."""
        items = "".join(
            f'<li class="{"neutral" if holds is None else ("good" if holds else "bad")}">{html.escape(text)}</li>'
            for holds, text in claims
        )
        self.blocks.append(f'<div class="verdict" id="verdict"><strong>Verdict</strong><ul>{items}</ul></div>')

    def definitions(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Name / value pairs (ids, digests, versions), values in monospace."""
        rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in pairs)
        self.blocks.append(f'<dl class="evidence">{rows}</dl>')

    def code(self, text: str) -> None:
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")

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
        """Embed a matplotlib figure as a PNG data URI (its natural size as width/height) and close it."""
        import matplotlib.pyplot as plt

        from .figures import DPI

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        png = buffer.getvalue()
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        data = base64.b64encode(png).decode()
        self.blocks.append(
            f'<figure><img alt="{html.escape(caption)}" width="{width}" height="{height}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def render(self) -> str:
        body = "\n".join(self.blocks)
        csp = self.content_security_policy
        policy = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">' if csp else ""
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{policy}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )


def number(value: float) -> str:
    """Two decimals, but never "0.00" for a value that is not zero: small values keep two significant digits."""
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2g}"


def cell(value: Any) -> str:
    """Booleans read as yes/no in colour; floats via `number`; None is a dash; numbers (also formatted ones)
    are right-aligned, other text left-aligned."""
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if value is None:
        return "<td>–</td>"
    if isinstance(value, float):
        return f"<td>{number(value)}</td>"
    if isinstance(value, int):
        return f"<td>{value}</td>"
    text = str(value)
    numeric = text[:1].isdigit() or text[:1] in "−-–<"  # a formatted number, perhaps with a word after it
    return f"<td>{html.escape(text)}</td>" if numeric else f'<td class="text">{html.escape(text)}</td>'
