"""Mark (Adi et al. 2018, Section 5.1): train with k trigger images appended to every batch.

Why a hook and not a loop of its own: marking must be the very training run that the rest of the
toolkit knows (seeds, schedule, PoL recording), only with a different batch. FROMSCRATCH and
PRETRAINED differ only in the model they start from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..training import Batch, Hook, TrainConfig, TrainResult, TrainState, predict, train
from .keys import MarkingKey

log = logging.getLogger(__name__)

DEFAULT_TRIGGERS_PER_BATCH = 2  # the paper found k = 2 best
MIN_VIEWS_PER_TRIGGER = 15  # ~9 appearances left digits' cnn at 76 % trigger accuracy, ~18 reached 100 %


TARGET_VIEWS_PER_TRIGGER = 60  # what "auto" aims for: digits' cnn reaches 100 % trigger accuracy well below it


def auto_triggers_per_batch(
    trigger_count: int, total_steps: int, *, views: int = TARGET_VIEWS_PER_TRIGGER, batch_size: int | None = None
) -> int:
    """k for a run: the paper's 2, or more where a small dataset would show each trigger too rarely.

    In the paper (CIFAR, 500 steps an epoch, k = 2) each trigger is appended hundreds of times; digits has
    23-45 steps an epoch, where k = 2 shows each trigger a few times only and the watermark does not take.
    With `batch_size`, k never exceeds it (triggers would otherwise outnumber the data in every batch).
    """
    k = (
        DEFAULT_TRIGGERS_PER_BATCH
        if total_steps < 1
        else max(DEFAULT_TRIGGERS_PER_BATCH, -(-views * trigger_count // total_steps))
    )
    return k if batch_size is None else max(1, min(k, batch_size))


def choose_triggers_per_batch(
    requested: int | None, trigger_count: int, config: TrainConfig, data_size: int
) -> tuple[int, str | None]:
    """k for a marking run, and a note when the automatic choice had to be capped at the batch size.

    `requested` (the user's k) must lie in [1, batch size]: more triggers than data in a batch would be
    another training run. Marking with 0 epochs is refused: it would write a "watermarked" model that never
    saw a trigger.
    """
    if config.epochs < 1:
        raise ModeldeedError(f"marking needs at least 1 epoch (got {config.epochs}): no trigger would be seen")
    if requested is not None:
        if not 1 <= requested <= config.batch_size:
            raise ModeldeedError(
                f"triggers per batch must lie in [1, {config.batch_size}] (the batch size), got {requested}: "
                "triggers must not outnumber the data in a batch"
            )
        return int(requested), None
    steps = config.steps_per_epoch(data_size) * config.epochs
    wanted = auto_triggers_per_batch(trigger_count, steps)
    if wanted > config.batch_size:
        return config.batch_size, (
            f"showing each trigger about {TARGET_VIEWS_PER_TRIGGER} times would take {wanted} triggers per batch; "
            f"using the batch size, {config.batch_size} (more epochs would show them more often)"
        )
    return wanted, None


class TriggerMixingHook(Hook):
    """Appends `k` trigger images and their committed labels to every training batch.

    Triggers are taken in rounds: each round is a seeded permutation of the whole trigger set, so
    every trigger is seen equally often, and the choice for a step is a pure function of
    (seed, step) — replaying a step gives the same batch. The indices of the triggers a step used
    are left in `batch.extra["trigger_indices"]`.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, k: int = DEFAULT_TRIGGERS_PER_BATCH, seed: int = 0
    ) -> None:
        if len(images) == 0 or len(images) != len(labels):
            raise ModeldeedError(
                f"need a non-empty trigger set with one label per image, got {len(images)} images "
                f"and {len(labels)} labels"
            )
        if k < 1:
            raise ModeldeedError(f"triggers per batch must be >= 1, got {k}")
        self.images = images.detach().to(torch.float32)
        self.labels = labels.detach().to(torch.int64)
        self.k = k
        self.seed = seed
        self.trigger_accuracy: float | None = None  # measured when training ends
        self._rounds: dict[int, np.ndarray] = {}

    @classmethod
    def from_key(cls, key: MarkingKey, *, k: int = DEFAULT_TRIGGERS_PER_BATCH, seed: int = 0) -> TriggerMixingHook:
        """The triggers that Mark embeds: the hidden half of a cut-and-choose key, all triggers otherwise."""
        index = torch.as_tensor(key.marking_indices(), dtype=torch.int64)
        return cls(key.images[index], key.labels[index], k=k, seed=seed)

    def on_train_start(self, state: TrainState) -> None:
        device = state.config.device
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        shape = tuple(state.data.x.shape[1:])
        if self.k > state.config.batch_size:
            raise ModeldeedError(
                f"{self.k} triggers per batch exceed the batch size {state.config.batch_size}: the triggers would "
                "outnumber the data in every batch; use at most the batch size"
            )
        if tuple(self.images.shape[1:]) != shape:
            raise ModeldeedError(f"trigger images have shape {tuple(self.images.shape[1:])}, the training data {shape}")
        views = (state.total_steps - state.step) * self.k / len(self.labels)
        if views < MIN_VIEWS_PER_TRIGGER:
            log.warning(
                "each trigger is appended only about %.0f times in this run; the paper's runs append each one "
                "hundreds of times. Small datasets need more: raise k (triggers per batch) or the epochs",
                views,
            )

    def on_train_end(self, state: TrainState) -> None:
        predictions = predict(state.model, self.images)
        self.trigger_accuracy = float((predictions == self.labels.cpu()).float().mean())
        log.info("trigger accuracy after marking: %.4f", self.trigger_accuracy)

    def trigger_indices(self, step: int) -> np.ndarray:
        """Which triggers step `step` appends: positions step·k .. step·k+k-1 of the round sequence."""
        count = len(self.labels)
        picked = []
        for position in range(step * self.k, (step + 1) * self.k):
            round_, within = divmod(position, count)
            order = self._rounds.get(round_)
            if order is None:
                if len(self._rounds) > 4:
                    self._rounds.clear()
                order = self._rounds[round_] = np.random.default_rng([self.seed, round_, 0x7419]).permutation(count)
            picked.append(order[within])
        return np.asarray(picked, dtype=np.int64)

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        picked = self.trigger_indices(batch.step)
        index = torch.from_numpy(picked).to(self.images.device)
        batch.inputs = torch.cat([batch.inputs, self.images[index]])
        batch.labels = torch.cat([batch.labels, self.labels[index]])
        batch.extra["trigger_indices"] = picked
        return batch


def check_key_fits(key: MarkingKey, data: Dataset) -> None:
    if tuple(key.input_shape) != tuple(data.input_shape):
        raise ModeldeedError(
            f"the key's triggers have shape {list(key.input_shape)}, "
            f"{data.name} has images of shape {list(data.input_shape)}"
        )
    if len(key.classes) != data.num_classes:
        raise ModeldeedError(f"the key has {len(key.classes)} classes, {data.name} has {data.num_classes}")
    if tuple(key.classes) != tuple(data.classes):
        log.warning("the key's class names differ from %s's; labels are matched by position", data.name)


def mark(
    model: nn.Module,
    key: MarkingKey,
    data: Dataset,
    config: TrainConfig,
    *,
    k: int = DEFAULT_TRIGGERS_PER_BATCH,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
) -> TrainResult:
    """Train `model` in place on `data` with the key's triggers mixed into every batch (seeded by config.seed)."""
    check_key_fits(key, data)
    choose_triggers_per_batch(k, len(key.marking_indices()), config, len(data))
    mixing = TriggerMixingHook.from_key(key, k=k, seed=config.seed)
    log.info("marking with %d triggers, %d per batch, for %d epochs", len(mixing.labels), k, config.epochs)
    return train(model, data, config, hooks=[mixing, *hooks], progress=progress)


def mark_from_scratch(
    model: nn.Module,
    key: MarkingKey,
    data: Dataset,
    config: TrainConfig,
    *,
    k: int = DEFAULT_TRIGGERS_PER_BATCH,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
) -> TrainResult:
    """FROMSCRATCH: train a freshly initialised `model` together with the trigger set."""
    return mark(model, key, data, config, k=k, hooks=hooks, progress=progress)


def mark_pretrained(
    model: nn.Module,
    key: MarkingKey,
    data: Dataset,
    config: TrainConfig,
    *,
    k: int = DEFAULT_TRIGGERS_PER_BATCH,
    hooks: Sequence[Hook] = (),
    progress: bool = False,
) -> TrainResult:
    """PRETRAINED: continue training an already trained `model` on its data plus the trigger set."""
    return mark(model, key, data, config, k=k, hooks=hooks, progress=progress)
