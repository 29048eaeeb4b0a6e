"""Watermarking by backdooring (Adi et al., USENIX Security 2018): KeyGen, Mark, Verify, public verification.

mk, vk = keygen(data.train.classes, data.train.input_shape, size=100)
save_key_pair("keys", mk, vk)                      # publish keys/verification_key.json
mark_pretrained(model, mk, data.train, TrainConfig(epochs=20))
verdict = verify(load_marking_key("keys"), load_verification_key("keys"), model, test_data=data.test)
"""

from .images import UserImages, image_files, load_trigger_images, read_labels_file, read_trigger_images
from .keygen import (
    DEFAULT_EPSILON,
    DEFAULT_SECURITY_BITS,
    DEFAULT_SIZE,
    KeyRandomness,
    bounded_keygen,
    keygen,
    pkeygen,
)
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
from .labels import derive_labels, derive_set_labels, set_digest
from .limits import MAX_TRIGGER_BYTES, MAX_TRIGGERS
from .mark import (
    DEFAULT_TRIGGERS_PER_BATCH,
    TriggerMixingHook,
    auto_triggers_per_batch,
    mark,
    mark_from_scratch,
    mark_pretrained,
)
from .public import check_public_key, pverify
from .reveal import (
    RevealedSet,
    RevealRecord,
    load_reveal,
    load_usage,
    parse_moment,
    reveal_history,
    reveal_next_set,
    reveal_set,
    reveal_timing,
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
from .triggers import abstract_triggers, write_trigger_pngs
from .verify import NOT_BOUND_NOTE, WatermarkVerdict, classify, key_notes, verify

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_SECURITY_BITS",
    "DEFAULT_SIZE",
    "DEFAULT_TRIGGERS_PER_BATCH",
    "KeyRandomness",
    "MAX_TRIGGERS",
    "MAX_TRIGGER_BYTES",
    "MarkingKey",
    "NOT_BOUND_NOTE",
    "Opening",
    "RevealRecord",
    "RevealedSet",
    "SecurityFigures",
    "TriggerMixingHook",
    "UserImages",
    "VerificationKey",
    "WatermarkVerdict",
    "abstract_triggers",
    "acceptance_threshold",
    "auto_triggers_per_batch",
    "binomial_tail",
    "bounded_keygen",
    "chance_probability",
    "check_public_key",
    "classify",
    "derive_labels",
    "derive_set_labels",
    "hoeffding_size",
    "image_files",
    "key_notes",
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
    "parse_moment",
    "pkeygen",
    "pverify",
    "read_labels_file",
    "read_trigger_images",
    "reveal_history",
    "reveal_next_set",
    "reveal_set",
    "reveal_timing",
    "save_key_pair",
    "save_reveal",
    "save_verification_key",
    "security_figures",
    "set_digest",
    "verify",
    "verify_revealed_set",
    "write_trigger_pngs",
]
