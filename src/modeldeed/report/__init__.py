"""Turn results (JSON) into a self-contained HTML report with the papers' numbers beside ours."""

from .html import Page

__all__ = ["Page"]
