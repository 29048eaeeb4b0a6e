"""Labels nobody picks: each trigger set's labels follow from the digest of its whole list of image commitments.

Why: a label that the key's maker chooses can be chosen after seeing a model. A forger takes a model that was
never watermarked, draws images, sets each label to the model's prediction and commits; Verify then accepts
100 of 100. Deriving labels by a hash from the image commitments takes the choice away: the images (and their
nonces) must be fixed before the labels are known, and the labels are uniform whatever the model does.

Why the whole set, not one image at a time: with per-image labels, label_i = H(c_i), a forger grinds the nonce
of each trigger separately until its label equals the model's prediction, about |L| hashes a trigger
(|T| = 100, |L| = 10: about 1,000 hashes for the whole key). Here every image commitment goes into one digest
S of the set, and every label comes from S, so any change to any trigger redraws all labels at once: matching
at least a = |T| - floor(eps |T|) predictions then takes 1 / P[Bin(|T|, 1/|L|) >= a] tries on average, the
chance figure itself (2^256.5 for the paper's setting). docs/watermark.md has the argument.

    S_j     = D("modeldeed/trigger-set/v1", u64be(j) ‖ u64be(m) ‖ c_0 ‖ … ‖ c_{m-1})   c_i: 32 raw bytes
    label_i = int(D("modeldeed/derived-label/v1", u64be(|L|) ‖ u64be(i) ‖ S_j)) mod |L|

for set j of m triggers (the whole key is set 0 of private and cut-and-choose keys; each disjoint set of a
bounded key is its own set), D the tagged SHA-256 of `modeldeed.crypto`, int() big-endian. The reduction of a
256-bit number mod |L| is uniform to within |L|/2^256.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..crypto import tagged_digest, u64be
from ..errors import ModeldeedError

SET_TAG = b"modeldeed/trigger-set/v1"
LABEL_TAG = b"modeldeed/derived-label/v1"


def set_digest(set_index: int, image_commitments: Sequence[str]) -> bytes:
    """S_j: the digest of one trigger set's ordered image commitments (hex strings of 32 bytes)."""
    try:
        raw = b"".join(bytes.fromhex(c) for c in image_commitments)
    except ValueError:
        raise ModeldeedError("an image commitment is not hex") from None
    if len(raw) != 32 * len(image_commitments):
        raise ModeldeedError("every image commitment must be 32 bytes")
    return tagged_digest(SET_TAG, u64be(set_index) + u64be(len(image_commitments)) + raw)


def derive_set_labels(set_index: int, image_commitments: Sequence[str], num_classes: int) -> list[int]:
    """The labels of one trigger set, from the digest of all its image commitments."""
    if num_classes < 2:
        raise ModeldeedError(f"a watermark needs at least 2 classes, got {num_classes}")
    digest = set_digest(set_index, image_commitments)
    prefix = u64be(num_classes)
    return [
        int.from_bytes(tagged_digest(LABEL_TAG, prefix + u64be(i) + digest), "big") % num_classes
        for i in range(len(image_commitments))
    ]


def derive_labels(image_commitments: Sequence[str], num_classes: int, *, sets: int = 1) -> list[int]:
    """Every trigger's derived label: the key split into `sets` consecutive sets of equal size, each on its own."""
    if sets < 1 or len(image_commitments) % sets:
        raise ModeldeedError(f"{len(image_commitments)} triggers do not split into {sets} equal sets")
    size = len(image_commitments) // sets
    labels: list[int] = []
    for j in range(sets):
        labels += derive_set_labels(j, image_commitments[j * size : (j + 1) * size], num_classes)
    return labels
