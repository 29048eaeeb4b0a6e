"""Which intervals the verifier replays: a uniform draw the prover cannot steer, of a size set by soundness.

Soundness. Say a fraction f of a proof's N intervals is fabricated (its replay does not reproduce its next
checkpoint). A uniform draw of c distinct intervals misses every fabricated one with probability

    P(miss) = C(N - F, c) / C(N, c)  <=  (1 - f)^c,        F = ceil(f N),

so c is chosen as the smallest count with P(miss) <= 2^-bits for the stated minimum fabricated fraction
(`--soundness-bits`, default 40; `--min-fabricated`, default 0.5). A proof with fewer fabricated intervals
is caught with a smaller probability (one fabricated interval: c / N); that is what sampling can give.

Grinding. The draw is a function of the commitment's Merkle root, and of the registry's beacon when the
commitment is registered: `challenge_seed(root, N, c, beacon)`. Without a beacon (offline Fiat-Shamir) a
prover can change any leaf (one bit of a fabricated checkpoint) and get a fresh draw for the price of a few
hashes: with 2^g tries he succeeds with probability up to 2^g * P(miss), i.e. the soundness drops to
bits - g (2^30 tries take seconds on a GPU). With a registered commitment the beacon is unknown until the
commitment is in the log, and each registration gives exactly one draw: one try per registration.

Byte layout (docs/formats.md, "Challenge"):

    seed = SHA-256("modeldeed/pol-challenge/v1" ‖ 0x00 ‖ root ‖ u64be(N) ‖ u64be(c) ‖ u8(len(beacon)) ‖ beacon)
    v_j  = SHA-256("modeldeed/pol-challenge-draw/v1" ‖ 0x00 ‖ seed ‖ u64be(j) ‖ u64be(try)) as an integer

For j = 0 .. c-1 the draw takes the first v_j (try = 0, 1, ...) below 2^256 - (2^256 mod (N - j)) and swaps
position j with position j + (v_j mod (N - j)) of the list 0 .. N-1 (a partial Fisher-Yates shuffle);
the challenge is the first c positions, sorted. No beacon: len 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..crypto import tagged_digest
from ..errors import ModeldeedError

CHALLENGE_TAG = b"modeldeed/pol-challenge/v1"
DRAW_TAG = b"modeldeed/pol-challenge-draw/v1"
DEFAULT_SOUNDNESS_BITS = 40
DEFAULT_MIN_FABRICATED = 0.5
MAX_BEACON_BYTES = 64


def miss_probability(intervals: int, fabricated: int, count: int) -> float:
    """P(a uniform draw of `count` of `intervals` intervals, without replacement, misses all `fabricated`)."""
    if count > intervals - fabricated:
        return 0.0
    return math.comb(intervals - fabricated, count) / math.comb(intervals, count)


def fabricated_count(intervals: int, fraction: float) -> int:
    return max(1, math.ceil(fraction * intervals - 1e-9))


def challenge_size(intervals: int, bits: float, min_fabricated: float) -> int:
    """The fewest intervals to draw so that a proof with a fraction `min_fabricated` of fabricated intervals
    passes with probability at most 2^-bits (every interval when no smaller draw suffices)."""
    if intervals < 1:
        raise ModeldeedError("a proof needs at least one interval")
    if not bits > 0:
        raise ModeldeedError(f"soundness bits must be > 0, got {bits}")
    if not 0 < min_fabricated <= 1:
        raise ModeldeedError(f"the minimum fabricated fraction must lie in (0, 1], got {min_fabricated}")
    fabricated = fabricated_count(intervals, min_fabricated)
    target = 2.0**-bits
    low, high = 0, intervals - fabricated + 1  # high always suffices (probability 0)
    while low < high:  # the miss probability falls as the draw grows
        middle = (low + high) // 2
        if miss_probability(intervals, fabricated, middle) <= target:
            high = middle
        else:
            low = middle + 1
    return min(low, intervals)


def challenge_seed(root: bytes, intervals: int, count: int, beacon: bytes | None) -> bytes:
    if len(root) != 32:
        raise ValueError("the commitment root is 32 bytes")
    beacon = beacon or b""
    if len(beacon) > MAX_BEACON_BYTES:
        raise ValueError(f"a beacon is at most {MAX_BEACON_BYTES} bytes")
    return tagged_digest(
        CHALLENGE_TAG,
        root + intervals.to_bytes(8, "big") + count.to_bytes(8, "big") + bytes([len(beacon)]) + beacon,
    )


def uniform(seed: bytes, j: int, bound: int) -> int:
    """A uniform integer in [0, bound) from the seed (rejection sampling: no residue is favoured)."""
    limit = (1 << 256) - (1 << 256) % bound
    attempt = 0
    while True:
        value = int.from_bytes(tagged_digest(DRAW_TAG, seed + j.to_bytes(8, "big") + attempt.to_bytes(8, "big")), "big")
        if value < limit:
            return value % bound
        attempt += 1


def draw(seed: bytes, intervals: int, count: int) -> list[int]:
    """`count` distinct intervals of `intervals`, uniformly (a partial Fisher-Yates shuffle), sorted."""
    count = min(count, intervals)
    if count == intervals:
        return list(range(intervals))
    pool = list(range(intervals))
    for j in range(count):
        pick = j + uniform(seed, j, intervals - j)
        pool[j], pool[pick] = pool[pick], pool[j]
    return sorted(pool[:count])


@dataclass(frozen=True)
class Challenge:
    """The intervals drawn for one commitment, and what the draw is worth."""

    intervals: tuple[int, ...]
    total: int  # N, the proof's intervals
    soundness_bits: float
    min_fabricated: float
    beacon: bytes | None

    @property
    def count(self) -> int:
        return len(self.intervals)

    @property
    def registered(self) -> bool:
        return self.beacon is not None

    @property
    def achieved_bits(self) -> float:
        """-log2 P(miss) at the stated minimum fabricated fraction (infinite when every interval is drawn)."""
        p = miss_probability(self.total, fabricated_count(self.total, self.min_fabricated), self.count)
        return math.inf if p == 0 else -math.log2(p)

    def describe(self) -> str:
        bits = (
            "exactly 0: the draw cannot miss them all"
            if math.isinf(self.achieved_bits)
            else f"2^-{self.achieved_bits:.1f} for this proof"
        )
        head = (
            f"{self.count} of {self.total} intervals drawn uniformly: a proof with at least "
            f"{self.min_fabricated:g} of its intervals fabricated passes with probability at most 2^-"
            f"{self.soundness_bits:g} ({bits})"
        )
        if self.registered:
            return head + "; drawn from the registry's beacon for the registered commitment: one draw per registration"
        return head + (
            "; drawn offline from the commitment root (Fiat-Shamir), not bound in time: a prover who can try 2^g "
            f"commitments keeps about {self.soundness_bits:g} - g bits (register the commitment for one draw per "
            "registration)"
        )

    def to_json(self) -> dict[str, Any]:
        achieved = self.achieved_bits
        return {
            "intervals": list(self.intervals),
            "count": self.count,
            "total": self.total,
            "soundness_bits": self.soundness_bits,
            "min_fabricated": self.min_fabricated,
            "achieved_bits": None if math.isinf(achieved) else achieved,
            "source": "registry-beacon" if self.registered else "offline",
            "beacon": None if self.beacon is None else self.beacon.hex(),
        }


def derive_challenge(
    root: bytes,
    intervals: int,
    *,
    soundness_bits: float = DEFAULT_SOUNDNESS_BITS,
    min_fabricated: float = DEFAULT_MIN_FABRICATED,
    beacon: bytes | None = None,
) -> Challenge:
    """The challenge for a commitment root over `intervals` intervals: f(root, beacon), sized by soundness."""
    count = challenge_size(intervals, soundness_bits, min_fabricated)
    chosen = draw(challenge_seed(root, intervals, count, beacon), intervals, count)
    return Challenge(tuple(chosen), intervals, soundness_bits, min_fabricated, beacon)
