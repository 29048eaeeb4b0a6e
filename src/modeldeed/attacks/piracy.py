"""Ownership piracy (Adi et al. 2018, §5.5): a thief embeds their own trigger set into a watermarked model.

The pirate generates a key of their own (TS-NEW), embeds it with the PRETRAINED method for as many
epochs as the owner trained with, then fine-tunes (FTAL or RTAL) or not. The base class judges the
owner's trigger set (TS-ORIG) with the owner's verifier; this attack records the pirate's set, judged
by the same real verifier with the pirate's key, so both trigger sets are reported side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from .base import AttackContext, Outcome
from .finetune import TuningAttack, reinitialize_head, tune
from .verifier import KeyPair, verdict_summary, watermark_verifier

PIRACY_FINE_TUNING = ("none", "ftal", "rtal")


def pirate_key(
    classes: tuple[str, ...],
    input_shape: tuple[int, int, int],
    *,
    size: int = 100,
    epsilon: float = 0.1,
    seed: int | None = None,
) -> KeyPair:
    """A key for the pirate (TS-NEW), made by the watermark scheme's own KeyGen; with `seed`, a reproducible
    one (a simulated adversary's key, so that an experiment can be repeated exactly)."""
    from ..watermark import keygen

    return keygen(classes, input_shape, size=size, epsilon=epsilon, seed=seed)


@dataclass(frozen=True, kw_only=True)
class OwnershipPiracy(TuningAttack):
    """Ownership piracy: embed a second trigger set (PRETRAINED), then optionally fine-tune (FTAL / RTAL).

    Paper: Adi et al., "Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks by
    Backdooring", USENIX Security 2018, §5.5 (Figure 7: TS-ORIG and TS-NEW after no tuning, FTAL, RTAL).

    Threat model: the thief holds the weights and labelled data of the task and wants to claim the model
    with a watermark of their own; they know the scheme but not the owner's trigger set.

    Arguments:
        finetune (str): "none", "ftal" or "rtal", run after embedding. Default: "ftal".
        key (tuple[MarkingKey, VerificationKey] | None): the pirate's key; None draws a fresh one with
            the scheme's KeyGen (`trigger_size` triggers, `epsilon`). Default: None.
        trigger_size (int): Default: 100 (the paper's).  epsilon (float): Default: 0.1.
        embed_epochs (int | None): epochs of embedding; None means `epochs` (the paper: as many as the
            owner used for the original trigger set). Default: None.
        embed_lr (float | None): learning rate of the embedding, dropped 10x halfway (as a PRETRAINED
            marking is trained); None means `lr`, the fine-tuning rate. Default: None.
        triggers_per_batch (int | None): k trigger images appended to every batch while embedding; None
            chooses as the owner's marking does (the paper's 2, more on small data so that each trigger is
            seen often enough), at most the batch size. Default: None.
        epochs, lr, batch_size, momentum, weight_decay, augment, data_fraction, seed, device, progress:
            see TuningAttack (embedding and fine-tuning both use them).

    Returns: (pirated model, AttackResult). The verdict is the owner's (TS-ORIG) on the final model;
    details["pirate"] holds the pirate's (TS-NEW) trigger accuracy and verdict after embedding and after
    fine-tuning.

    Example:
        >>> pirated, result = OwnershipPiracy(finetune="rtal", **paper_settings(config))(
        ...     model, splits.train, test=splits.test, verifier=owner_verifier)
        >>> result.trigger_accuracy, result.details["pirate"]["trigger_accuracy"]
    """

    name: ClassVar[str] = "piracy"
    evaluate_original_head: ClassVar[bool] = True
    finetune: str = "ftal"
    key: KeyPair | None = None
    trigger_size: int = 100
    epsilon: float = 0.1
    embed_epochs: int | None = None
    embed_lr: float | None = None
    triggers_per_batch: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.finetune not in PIRACY_FINE_TUNING:
            raise ModeldeedError(
                f"piracy: finetune must be one of {', '.join(PIRACY_FINE_TUNING)}, got {self.finetune!r}"
            )
        if self.embed_epochs is not None and self.embed_epochs < 0:
            raise ModeldeedError(f"piracy: embed_epochs must be >= 0, got {self.embed_epochs}")
        if self.trigger_size < 1 or (self.triggers_per_batch is not None and self.triggers_per_batch < 1):
            raise ModeldeedError("piracy: trigger_size and triggers_per_batch must be >= 1")

    def parameters(self) -> dict[str, Any]:
        doc = super().parameters()
        doc["key"] = None if self.key is None else self.key[1].key_id  # never the secret triggers
        return doc

    def planned_epochs(self) -> float:
        embed = self.epochs if self.embed_epochs is None else self.embed_epochs
        return (embed + (self.epochs if self.finetune != "none" else 0)) * self.data_fraction

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        from ..watermark import auto_triggers_per_batch, mark_pretrained

        key = self.key or pirate_key(
            context.classes, context.input_shape, size=self.trigger_size, epsilon=self.epsilon, seed=self.seed
        )
        pirate = watermark_verifier(*key)
        embed = self.train_config(self.embed_epochs, seed_offset=1)
        if self.embed_lr is not None:
            embed = dataclasses.replace(embed, lr=self.embed_lr, lr_milestones=(max(1, embed.epochs // 2),))
        k = self.triggers_per_batch
        if k is None:
            steps = embed.epochs * embed.steps_per_epoch(len(data))
            k = auto_triggers_per_batch(len(key[0].marking_indices()), steps, batch_size=embed.batch_size)
        if embed.epochs > 0:
            mark_pretrained(model, key[0], data, embed, k=k, progress=context.progress)
        after_embedding = verdict_summary(pirate(model))
        if self.finetune == "rtal":
            reinitialize_head(model, self.seed)
        if self.finetune != "none":
            tune(model, data, self.train_config(seed_offset=2), progress=context.progress)
        final = verdict_summary(pirate(model))
        return Outcome(
            model,
            {
                "finetune": self.finetune,
                "embed_epochs": embed.epochs,
                "triggers_per_batch": k,
                "pirate": {"key_id": key[1].key_id, **final, "after_embedding": after_embedding},
            },
        )
