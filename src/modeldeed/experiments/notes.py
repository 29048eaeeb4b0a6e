"""Warnings that a composite run's inner steps log, kept for its report instead of the terminal.

When the demo or an experiment runs an attack or a spoof, a warning such as "declare a smaller batch size"
speaks to whoever chose that attack's settings: the demo or the experiment did, and its user cannot act on it
from the command they ran. Such warnings are collected into the results (the report shows them as notes, where
they explain a number); errors and everything below WARNING still reach the usual handlers, so `-v` works as
before. The demo collects all of modeldeed's warnings (its user chooses almost nothing), an experiment only
those of the attacks it configures (a warning about the owner's training speaks to options it has).
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
def collected_warnings(into: list[str], logger_name: str = PACKAGE_LOGGER) -> Iterator[list[str]]:
    """While inside, WARNING records of `logger_name` and below go to `into`; errors and lower levels pass on."""
    logger = logging.getLogger(logger_name)
    collector = _Collector(into)
    propagate = logger.propagate
    logger.addHandler(collector)
    logger.propagate = False
    try:
        yield into
    finally:
        logger.removeHandler(collector)
        logger.propagate = propagate
