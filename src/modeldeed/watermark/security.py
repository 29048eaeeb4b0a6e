"""How likely a model that never saw the trigger set is to pass Verify, and how big |T| must be.

Why exact: the figure is the whole security argument of the scheme (Adi et al. 2018, Section 4.2),
and the paper's printed bound is garbled. Labels are drawn uniformly and independently of the images,
so whatever a model that never saw T outputs on a trigger, it matches the committed label with
probability exactly 1/|L|, independently across triggers. Verify accepts iff at least
a = |T| - floor(eps·|T|) triggers agree, so

    P[chance accept] = P[Bin(|T|, 1/|L|) >= a] = sum_{k=a}^{|T|} C(|T|, k) (|L|-1)^(|T|-k) / |L|^|T|,

a ratio of integers that is computed here without rounding. The derivation, and the corrected
Hoeffding bound |T| >= n·ln 2 / (2 (1 - eps - 1/|L|)^2), are in docs/watermark.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..errors import ModeldeedError
from .limits import MAX_CLASSES, MAX_SECURITY_BITS, MAX_TRIGGERS, check_count, check_epsilon


def exact_epsilon(epsilon: float) -> Fraction:
    """ε as the decimal the user wrote (0.1 -> 1/10), so floor(ε·|T|) has no rounding surprises."""
    return Fraction(repr(check_epsilon(epsilon)))


def max_disagreements(size: int, epsilon: float) -> int:
    """floor(ε·|T|): how many triggers may disagree with their committed label."""
    return math.floor(exact_epsilon(epsilon) * size)


def acceptance_threshold(size: int, epsilon: float) -> int:
    """The least number of agreeing triggers for Verify to accept: |T| - floor(ε·|T|)."""
    return size - max_disagreements(size, epsilon)


def binomial_tail(trials: int, at_least: int, num_classes: int) -> Fraction:
    """P[Bin(trials, 1/num_classes) >= at_least], exactly.

    The terms C(n, k)·(L-1)^(n-k) are built one from the next (C(n, k+1) = C(n, k)·(n-k)/(k+1)), so the
    cost is one big-integer product a term; `trials` is bounded by MAX_TRIGGERS.
    """
    check_count("the number of classes", num_classes, minimum=2, maximum=MAX_CLASSES)
    check_count("the number of trials", trials, minimum=0)
    if at_least <= 0:
        return Fraction(1)
    if at_least > trials:
        return Fraction(0)
    others = num_classes - 1
    comb = math.comb(trials, at_least)
    power = others ** (trials - at_least)
    numerator = 0
    for k in range(at_least, trials + 1):
        numerator += comb * power
        if k < trials:
            comb = comb * (trials - k) // (k + 1)
            power //= others
    return Fraction(numerator, num_classes**trials)


def log2_fraction(value: Fraction) -> float:
    """log2 of a positive Fraction whose parts may be far beyond float range; -inf for 0."""
    if value == 0:
        return -math.inf
    return math.log2(value.numerator) - math.log2(value.denominator)


@dataclass(frozen=True)
class SecurityFigures:
    """The acceptance rule for one trigger set and its chance of being met by luck."""

    size: int
    num_classes: int
    epsilon: float
    threshold: int  # agreements needed
    max_disagreements: int
    chance_probability: float  # may underflow to 0.0; chance_log2 keeps the magnitude
    chance_log2: float

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "num_classes": self.num_classes,
            "epsilon": self.epsilon,
            "threshold": self.threshold,
            "max_disagreements": self.max_disagreements,
            "chance_probability": self.chance_probability,
            "chance_log2": self.chance_log2 if math.isfinite(self.chance_log2) else None,
        }


def security_figures(size: int, num_classes: int, epsilon: float) -> SecurityFigures:
    check_count("|T|", size)
    threshold = acceptance_threshold(size, epsilon)
    tail = binomial_tail(size, threshold, num_classes)
    return SecurityFigures(
        size, num_classes, float(epsilon), threshold, size - threshold, float(tail), log2_fraction(tail)
    )


def chance_probability(size: int, num_classes: int, epsilon: float) -> float:
    """P[a model that never saw T passes Verify] = P[Bin(|T|, 1/|L|) >= |T| - floor(ε|T|)]."""
    return float(binomial_tail(size, acceptance_threshold(size, epsilon), num_classes))


def _check_feasible(security_bits: int, num_classes: int, epsilon: float) -> Fraction:
    check_count("the security level in bits", security_bits, minimum=0, maximum=MAX_SECURITY_BITS)
    check_count("the number of classes", num_classes, minimum=2, maximum=MAX_CLASSES)
    eps = exact_epsilon(epsilon)
    if 1 - eps <= Fraction(1, num_classes):
        raise ModeldeedError(
            f"with {num_classes} classes a guessing model already agrees with 1/{num_classes} "
            f"of the labels, so epsilon must be below {1 - 1 / num_classes:.4g}; got {epsilon}"
        )
    return eps


def kl_divergence(q: float, p: float) -> float:
    """KL(Bernoulli(q) || Bernoulli(p)) in nats."""
    out = q * math.log(q / p) if q > 0 else 0.0
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p))
    return out


def chernoff_size(security_bits: int, num_classes: int, epsilon: float) -> int:
    """|T| >= n·ln 2 / KL(1-ε || 1/|L|): from here on every size is secure (Chernoff-Hoeffding)."""
    eps = _check_feasible(security_bits, num_classes, epsilon)
    divergence = kl_divergence(float(1 - eps), 1 / num_classes)
    return max(1, math.ceil(security_bits * math.log(2) / divergence * (1 + 1e-9)) + 1)


def hoeffding_size(security_bits: int, num_classes: int, epsilon: float) -> int:
    """The corrected form of the paper's Section 4.2 bound: |T| >= n·ln 2 / (2 (1 - ε - 1/|L|)^2)."""
    eps = _check_feasible(security_bits, num_classes, epsilon)
    gap = float(1 - eps) - 1 / num_classes
    return max(1, math.ceil(security_bits * math.log(2) / (2 * gap * gap)))


def tail_numerators(top: int, num_classes: int, epsilon: float) -> list[int]:
    """N_n for n = 1..top, where P_chance(n) = N_n / |L|^n, in one pass of O(1) big-integer steps per size.

    With b(n, k) = C(n, k)·(|L|-1)^(n-k) and N(n, a) = sum_{k >= a} b(n, k): Pascal's rule gives
    N(n+1, a) = |L|·N(n, a) + b(n, a-1), and raising the threshold gives N(n, a+1) = N(n, a) - b(n, a);
    b moves along by b(n+1, k) = b(n, k)·(n+1)(|L|-1)/(n+1-k) and b(n, k+1) = b(n, k)·(n-k)/((k+1)(|L|-1)),
    all exact integer divisions.
    """
    eps = exact_epsilon(epsilon)
    others = num_classes - 1
    n, a = 1, acceptance_threshold(1, epsilon)  # a = 1: a single trigger must agree
    total, below = 1, others  # N(1, 1) = 1, b(1, 0) = |L| - 1
    out = [total]
    while n < top:
        total = num_classes * total + below  # N(n+1, a)
        below = below * (n + 1) * others // (n + 2 - a)  # b(n+1, a-1)
        n += 1
        wanted = n - math.floor(eps * n)
        if wanted == a + 1:
            at = below * (n - a + 1) // (a * others)  # b(n, a)
            total -= at
            below, a = at, a + 1
        out.append(total)
    return out


def minimum_trigger_set_size(security_bits: int, num_classes: int, epsilon: float, *, stable: bool = True) -> int:
    """The smallest |T| whose chance probability is at most 2^-n (and, if `stable`, stays so for every larger |T|).

    The exact tail is a sawtooth in |T|: it falls while floor(ε|T|) stays put and jumps up when it
    grows, so a size just above the plain minimum can fail again (2 classes, ε = 0.1, n = 20: 29 passes,
    30-32 fail). With `stable` (the default) the answer is a size from which on every size is secure.
    Above `chernoff_size` every size is secure, so the tails of every size up to it settle both answers.
    """
    _check_feasible(security_bits, num_classes, epsilon)
    top = chernoff_size(security_bits, num_classes, epsilon)
    if top > MAX_TRIGGERS:
        raise ModeldeedError(
            f"2^-{security_bits} with {num_classes} classes and epsilon {epsilon} may need more than "
            f"{MAX_TRIGGERS:,} triggers (Chernoff bound: {top:,}), more than a key can hold; lower epsilon or the level"
        )
    level = 2**security_bits
    meets = [
        total * level <= num_classes**size for size, total in enumerate(tail_numerators(top, num_classes, epsilon), 1)
    ]
    if not stable:
        return meets.index(True) + 1
    failing = [size for size, ok in enumerate(meets, 1) if not ok]
    return failing[-1] + 1 if failing else 1
