"""The experiment results file (`<experiment>.json`, written by `modeldeed experiment`) as a declared format.

The report reads these files from a directory a user names; the envelope (format, version, which
experiment, its setting, the machine, the time) is declared here and validated strictly, and the
experiment-specific `results` object is checked by the section that renders it (a missing or mistyped
entry is a FormatError naming the file, never a traceback).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..schema import Document, Name

ExperimentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]


class ExperimentSettingDocument(Document):
    """The knobs an experiment ran with (modeldeed.experiments.ExperimentSetting)."""

    data: Name
    data_dir: str | None = None
    model: Name
    epochs: Annotated[int, Field(ge=0)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0)]
    seed: Annotated[int, Field(ge=0, le=2**64 - 1)]
    trigger_size: Annotated[int, Field(ge=1)]
    triggers_per_batch: Annotated[int, Field(ge=1)] | None = None
    train_limit: Annotated[int, Field(ge=1)] | None = None
    device: Name = "cpu"


class ExperimentDocument(Document):
    """`<experiment>.json`: one experiment's setting, machine, wall time and results."""

    format: Literal["modeldeed.experiment"]
    version: Literal[1]
    experiment: ExperimentName
    setting: ExperimentSettingDocument
    machine: dict[str, Any]
    seconds: Annotated[float, Field(ge=0)]
    results: dict[str, Any]
    notes: list[Annotated[str, Field(max_length=10_000)]] = []  # warnings of the attacks and spoofs it ran
