"""Fine-tuning attacks of Adi et al. (USENIX Security 2018, §5.4): FTLL, FTAL, RTLL, RTAL.

All four run the one training loop (`training.train`); the last-layer variants pass only the head's
parameters to it, the re-train variants first re-initialise the head. The paper's adversary fine-tunes
with as much data and as many epochs as the owner trained with, at the owner's last learning rate:
`paper_settings(training_config)` gives exactly those hyper-parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..models import ModelInfo, last_linear, reset_last_linear
from ..training import Hook, TrainConfig, train
from .base import Attack, AttackContext, Outcome

_DEFAULTS = TrainConfig()


def training_config(info: ModelInfo) -> TrainConfig | None:
    """The owner's TrainConfig from a model.json: extra.training (written by `modeldeed train`), else
    extra.watermark.training (the PRETRAINED marking run of `modeldeed watermark embed`); None if neither."""
    extra = info.extra or {}
    watermark = extra.get("watermark")
    for doc in (extra.get("training"), watermark.get("training") if isinstance(watermark, dict) else None):
        if isinstance(doc, dict):
            try:
                return TrainConfig.from_json(doc)
            except (ModeldeedError, TypeError):
                continue
    return None


def paper_settings(config: TrainConfig) -> dict[str, Any]:
    """The paper's fine-tuning adversary: the owner's epochs, batch size and optimiser, at the last learning rate."""
    return {
        "epochs": config.epochs,
        "lr": config.lr_at(max(config.epochs - 1, 0)),
        "batch_size": config.batch_size,
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
        "augment": config.augment,
    }


def from_scratch_settings(config: TrainConfig) -> dict[str, Any]:
    """For attacks that train a fresh model (distillation): the owner's whole schedule, initial learning rate on."""
    return {
        **paper_settings(config),
        "lr": config.lr,
        "lr_milestones": tuple(config.lr_milestones),
        "lr_gamma": config.lr_gamma,
    }


@dataclass(frozen=True, kw_only=True)
class TuningAttack(Attack):
    """Base of attacks that train with the one loop; holds the SGD hyper-parameters they share.

    Arguments:
        epochs (int): epochs of training. Default: 20 (the default training length of `modeldeed train`).
        lr (float): constant learning rate. Default: 0.05 (the last learning rate of a default training run).
        batch_size (int): Default: 64.  momentum (float): Default: 0.9.  weight_decay (float): Default: 5e-4.
        augment (bool): random crop + flip. Default: False.
        lr_milestones (tuple[int, ...]), lr_gamma (float): a step schedule; fine-tuning uses none. Default: (), 0.1.
    """

    epochs: int = 20
    lr: float = _DEFAULTS.lr
    batch_size: int = _DEFAULTS.batch_size
    momentum: float = _DEFAULTS.momentum
    weight_decay: float = _DEFAULTS.weight_decay
    augment: bool = False
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = _DEFAULTS.lr_gamma

    def __post_init__(self) -> None:
        super().__post_init__()
        self.train_config()  # validates the settings now, not halfway through an attack

    def planned_epochs(self) -> float:
        return float(self.epochs) * self.data_fraction

    def train_config(self, epochs: int | None = None, seed_offset: int = 0) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs if epochs is None else epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            lr_milestones=self.lr_milestones,
            lr_gamma=self.lr_gamma,
            seed=self.seed + seed_offset,
            augment=self.augment,
            device=self.device,
        )


def tune(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    last_layer_only: bool = False,
    hooks: Sequence[Hook] = (),
    progress: bool = True,
) -> None:
    """Train `model` in place with the one loop; `last_layer_only` freezes everything but the head.

    A frozen body stays bit-identical, buffers included: batch-norm running statistics that train mode
    would update are restored afterwards, so FTLL/RTLL change the head and nothing else.
    """
    if config.epochs == 0:
        return
    if not last_layer_only:
        train(model, data, config, hooks=hooks, progress=progress)
        return
    head = last_linear(model)
    with frozen_body(model, head):
        train(model, data, config, hooks=hooks, parameters=head.parameters(), progress=progress)


@contextlib.contextmanager
def frozen_body(model: nn.Module, head: nn.Module) -> Iterator[None]:
    head_ids = {id(t) for t in list(head.parameters()) + list(head.buffers())}
    params = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    buffers = [(b, b.detach().clone()) for b in model.buffers() if id(b) not in head_ids]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def reinitialize_head(model: nn.Module, seed: int) -> None:
    """Re-initialise the head with PyTorch's default initialisation, drawn from `seed` (global RNG untouched).

    The draw happens on the CPU, so the same seed gives the same head on every device.
    """
    head = last_linear(model)
    device = head.weight.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head.cpu()
        reset_last_linear(model)
        head.to(device)


@dataclass(frozen=True, kw_only=True)
class _FineTune(TuningAttack):
    last_layer_only: ClassVar[bool] = False
    reinitialize: ClassVar[bool] = False
    evaluate_original_head: ClassVar[bool] = True

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        if self.reinitialize:
            reinitialize_head(model, self.seed)
        tune(model, data, self.train_config(), last_layer_only=self.last_layer_only, progress=context.progress)
        return Outcome(
            model,
            {
                "trained": "last layer" if self.last_layer_only else "all layers",
                "head_reinitialized": self.reinitialize,
            },
        )


_DOC = """{title} ({alias}): {what}

    Paper: Adi et al., "Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks by
    Backdooring", USENIX Security 2018, §5.4.

    Threat model: the adversary holds the watermarked model's weights and labelled data from the same
    task (by default as much as the owner trained with) and fine-tunes {scope}.

    Arguments: epochs, lr, batch_size, momentum, weight_decay, augment (see TuningAttack; the paper's
    values come from `paper_settings(training_config)`), data_fraction, seed, device, progress.

    Returns: (attacked model, AttackResult). Trigger accuracy is reported with the attacker's head (the
    thief's model, the verdict) and with the original head swapped back in (the paper's code's view).

    Example:
        >>> attacked, result = {alias}(**paper_settings(config))(model, splits.train, test=splits.test,
        ...                                                  verifier=verifier)
        >>> result.trigger_accuracy, result.original_head.trigger_accuracy, result.watermark_removed
"""


@dataclass(frozen=True, kw_only=True)
class FineTuneLastLayer(_FineTune):
    name: ClassVar[str] = "ftll"
    last_layer_only: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class FineTuneAllLayers(_FineTune):
    name: ClassVar[str] = "ftal"


@dataclass(frozen=True, kw_only=True)
class ReTrainLastLayer(_FineTune):
    name: ClassVar[str] = "rtll"
    last_layer_only: ClassVar[bool] = True
    reinitialize: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class ReTrainAllLayers(_FineTune):
    name: ClassVar[str] = "rtal"
    reinitialize: ClassVar[bool] = True


FineTuneLastLayer.__doc__ = _DOC.format(
    title="Fine-Tune Last Layer",
    alias="FTLL",
    scope="only the output layer",
    what="update the last layer only; every other layer is frozen.",
)
FineTuneAllLayers.__doc__ = _DOC.format(
    title="Fine-Tune All Layers", alias="FTAL", scope="every layer", what="update every layer of the model."
)
ReTrainLastLayer.__doc__ = _DOC.format(
    title="Re-Train Last Layer",
    alias="RTLL",
    scope="only the output layer",
    what="re-initialise the last layer randomly, then update it alone.",
)
ReTrainAllLayers.__doc__ = _DOC.format(
    title="Re-Train All Layers",
    alias="RTAL",
    scope="every layer",
    what="re-initialise the last layer randomly, then update every layer.",
)

FTLL = FineTuneLastLayer
FTAL = FineTuneAllLayers
RTLL = ReTrainLastLayer
RTAL = ReTrainAllLayers

FINE_TUNE_MODES: dict[str, type[_FineTune]] = {"ftll": FTLL, "ftal": FTAL, "rtll": RTLL, "rtal": RTAL}


def fine_tune_attack(mode: str, **parameters: Any) -> _FineTune:
    """`fine_tune_attack("rtal", epochs=5)` -> ReTrainAllLayers(epochs=5)."""
    try:
        cls = FINE_TUNE_MODES[mode.lower()]
    except KeyError:
        raise ModeldeedError(f"unknown fine-tuning mode {mode!r}; choose one of {', '.join(FINE_TUNE_MODES)}") from None
    return cls(**parameters)
