"""The judge of every attack: the watermark scheme's own Verify, bound to a key.

Attacks never compute their own verdict; the base class calls what `watermark_verifier` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from .base import VerdictLike, Verifier

if TYPE_CHECKING:
    from ..watermark.keys import MarkingKey, VerificationKey

KeyPair = tuple["MarkingKey", "VerificationKey"]


def watermark_verifier(marking_key: MarkingKey, verification_key: VerificationKey, **options: Any) -> Verifier:
    """Verify(mk, vk, model) of the watermark scheme as a one-argument callable: model in, verdict out.

    `options` go to `modeldeed.watermark.verify` (e.g. `epsilon=`); the verdict is its `WatermarkVerdict`.
    """
    from ..watermark import verify

    def check(model: nn.Module) -> VerdictLike:
        return verify(marking_key, verification_key, model, **options)

    return check


def load_key_pair(directory: str | Path) -> KeyPair:
    """The owner's marking key and verification key from a key directory (every field checked on load)."""
    from ..watermark import load_key_pair as load_pair

    return load_pair(directory)


def verdict_summary(verdict: VerdictLike) -> dict[str, Any]:
    chance = getattr(verdict, "chance_probability", None)
    return {
        "trigger_accuracy": float(verdict.trigger_accuracy),
        "accepted": bool(verdict.accepted),
        "chance_probability": None if chance is None else float(chance),
    }
