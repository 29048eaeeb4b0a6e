"""Warnings that a composite run's inner steps log, kept for its report instead of the terminal.

When the demo runs an attack or a spoof, a warning such as "declare a smaller batch size" speaks to whoever
chose that attack's settings: the demo did, its user cannot act on it from `modeldeed demo`. Such warnings are
collected (and shown in the report's notes, where they explain a number); everything below WARNING still
reaches the usual handlers, so `-v` works as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

PACKAGE_LOGGER = "modeldeed"


class _Collector(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and record.levelno < logging.ERROR:
            self.into.append(f"{record.name.removeprefix(PACKAGE_LOGGER + '.')}: {record.getMessage()}")
            return
        for handler in logging.getLogger().handlers:  # what propagation would have done
            if record.levelno >= handler.level:
                handler.handle(record)


@contextmanager
def collected_warnings(into: list[str]) -> Iterator[list[str]]:
    """While inside, modeldeed's own WARNING records go to `into`; errors and lower levels are passed on."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    collector = _Collector(into)
    propagate = logger.propagate
    logger.addHandler(collector)
    logger.propagate = False
    try:
        yield into
    finally:
        logger.removeHandler(collector)
        logger.propagate = propagate
