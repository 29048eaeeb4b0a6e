"""Watermarking by backdooring (Adi et al., USENIX Security 2018): KeyGen, Mark, Verify, public verification.

mk, vk = keygen(data.train.classes, data.train.input_shape, size=100)
save_key_pair("keys", mk, vk)                      # publish keys/verification_key.json
mark_pretrained(model, mk, data.train, TrainConfig(epochs=20))
verdict = verify(load_marking_key("keys"), load_verification_key("keys"), model, test_data=data.test)
"""

from .keygen import DEFAULT_EPSILON, DEFAULT_SECURITY_BITS, DEFAULT_SIZE, bounded_keygen, keygen, pkeygen
from .keys import (
    MarkingKey,
    Opening,
    VerificationKey,
    load_key_pair,
    load_marking_key,
    load_verification_key,
    save_key_pair,
    save_verification_key,
)
from .mark import (
    DEFAULT_TRIGGERS_PER_BATCH,
    TriggerMixingHook,
    auto_triggers_per_batch,
    mark,
    mark_from_scratch,
    mark_pretrained,
)
from .public import (
    RevealedSet,
    check_public_key,
    load_reveal,
    load_usage,
    pverify,
    reveal_next_set,
    save_reveal,
    verify_revealed_set,
)
from .security import (
    SecurityFigures,
    acceptance_threshold,
    binomial_tail,
    chance_probability,
    hoeffding_size,
    minimum_trigger_set_size,
    security_figures,
)
from .triggers import abstract_triggers, load_trigger_images, write_trigger_pngs
from .verify import WatermarkVerdict, classify, verify

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_SECURITY_BITS",
    "DEFAULT_SIZE",
    "DEFAULT_TRIGGERS_PER_BATCH",
    "MarkingKey",
    "Opening",
    "RevealedSet",
    "SecurityFigures",
    "TriggerMixingHook",
    "auto_triggers_per_batch",
    "VerificationKey",
    "WatermarkVerdict",
    "abstract_triggers",
    "acceptance_threshold",
    "binomial_tail",
    "bounded_keygen",
    "chance_probability",
    "check_public_key",
    "classify",
    "hoeffding_size",
    "keygen",
    "load_key_pair",
    "load_marking_key",
    "load_reveal",
    "load_trigger_images",
    "load_usage",
    "load_verification_key",
    "mark",
    "mark_from_scratch",
    "mark_pretrained",
    "minimum_trigger_set_size",
    "pkeygen",
    "pverify",
    "reveal_next_set",
    "save_key_pair",
    "save_reveal",
    "save_verification_key",
    "security_figures",
    "verify",
    "verify_revealed_set",
    "write_trigger_pngs",
]
