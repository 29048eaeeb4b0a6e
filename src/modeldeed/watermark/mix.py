"""Marking from a user's own training loop: the key's triggers mixed into the user's batches.

The same choice of triggers as modeldeed's marking hook (`TriggerMixingHook.trigger_indices`: seeded rounds over
the trigger set, k per step, a pure function of (seed, step)), applied to a batch the user's loader produced:

    mixer = TriggerMixer.from_key(load_marking_key(keydir), k=2, seed=seed)
    x, y = mixer.mix(rec.step_index, x, y)      # then rec.step(x, y, indices): recorded as trained

The mixed triggers follow the dataset samples, so a proof recorder stores them (they are not dataset samples)
and the batch hash covers what the step trained on. A training statement commits to `mixer.images`,
`mixer.labels` and `mixer.key_ids` (`pol.statement.TriggerSet`), so the hardened verifier accepts exactly these
stored samples.
"""

from __future__ import annotations

import torch

from ..errors import ModeldeedError
from .keys import MarkingKey
from .mark import DEFAULT_TRIGGERS_PER_BATCH, TriggerMixingHook


class TriggerMixer:
    """Appends k trigger images and their committed labels to a user's batch, chosen per step."""

    def __init__(self, hook: TriggerMixingHook, key_ids: tuple[str, ...]) -> None:
        self.hook = hook
        self.key_ids = key_ids

    @classmethod
    def from_key(cls, key: MarkingKey, *, k: int = DEFAULT_TRIGGERS_PER_BATCH, seed: int = 0) -> TriggerMixer:
        return cls(TriggerMixingHook.from_key(key, k=k, seed=seed), (key.key_id,))

    @property
    def images(self) -> torch.Tensor:
        return self.hook.images

    @property
    def labels(self) -> torch.Tensor:
        return self.hook.labels

    def mix(self, step: int, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of step `step` with its triggers appended (on the batch's device)."""
        if tuple(inputs.shape[1:]) != tuple(self.images.shape[1:]):
            raise ModeldeedError(
                f"trigger images have shape {tuple(self.images.shape[1:])}, the batch {tuple(inputs.shape[1:])}"
            )
        if self.hook.k > len(inputs):
            raise ModeldeedError(f"{self.hook.k} triggers per batch exceed the batch's {len(inputs)} samples")
        picked = torch.from_numpy(self.hook.trigger_indices(step))
        x = self.images[picked].to(device=inputs.device, dtype=inputs.dtype)
        y = self.labels[picked].to(device=labels.device, dtype=labels.dtype)
        return torch.cat([inputs, x]), torch.cat([labels, y])
