"""Drawing the library's progress events on stderr: a tqdm bar on a terminal, one line per item elsewhere.

On a terminal the bar reads "attack 3/12 rtal  41%|████     | 0:12<0:17", its ETA weighted by each item's
estimated cost; the one training loop's own bar appears beneath it while an item trains and vanishes after.
In a log (stderr not a terminal) each item prints one line with the elapsed time and the time left. With
--no-progress nothing is drawn.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..progress import ProgressEvent


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressPrinter:
    """A `ProgressCallback` for the CLI. Call `close()` when the work ends (or use it as a context manager)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        if self.interactive:
            self._draw_bar(event)
        elif not event.finished:
            left = event.remaining_seconds()
            eta = f", about {clock(left)} left" if left is not None else ""
            self.stream.write(
                f"{event.task} {event.index + 1}/{event.count}: {event.label} (elapsed {clock(event.elapsed)}{eta})\n"
            )
            self.stream.flush()

    def _draw_bar(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=max(event.total, 1e-9),
                file=self.stream,
                position=0,
                leave=True,
                dynamic_ncols=True,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
            )
        self.bar.set_description_str(
            f"{event.task} done" if event.finished else f"{event.task} {event.index + 1}/{event.count} {event.label}",
            refresh=False,
        )
        self.bar.total = max(event.total, 1e-9)
        self.bar.n = min(event.done, event.total)
        self.bar.refresh()
        if event.finished:
            self.close()

    def write(self, text: str, file: TextIO | None = None) -> None:
        """Print a line (to stdout by default) without tearing a bar that is being drawn."""
        out = file or sys.stdout
        if self.bar is not None:
            from tqdm.auto import tqdm

            tqdm.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
