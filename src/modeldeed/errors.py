"""Errors that mean "the input is wrong", so the CLI can answer with exit status 2 and one line."""

from __future__ import annotations

from pathlib import Path


class ModeldeedError(ValueError):
    """Bad input: a missing or malformed file, an unknown name, an impossible setting."""


class DataError(ModeldeedError):
    """A dataset file is missing or does not have the expected layout."""


class FormatError(ModeldeedError):
    """A modeldeed file (model, key, proof) is malformed or fails validation."""


def file_error(cls: type[ModeldeedError], path: str | Path, problem: str) -> ModeldeedError:
    """Every message names the file first, then what is wrong with it."""
    return cls(f"{path}: {problem}")
