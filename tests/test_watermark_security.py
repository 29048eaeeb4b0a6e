"""The chance figures and the minimum trigger set size, checked against direct computations."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from scipy.stats import binom

from modeldeed.errors import ModeldeedError
from modeldeed.watermark.security import (
    acceptance_threshold,
    binomial_tail,
    chance_probability,
    chernoff_size,
    hoeffding_size,
    max_disagreements,
    minimum_trigger_set_size,
    security_figures,
)


def direct_tail(trials: int, at_least: int, classes: int) -> float:
    """Term-by-term summation in floats: the textbook formula, written independently."""
    p = 1.0 / classes
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(max(at_least, 0), trials + 1))


@pytest.mark.parametrize(
    "trials, at_least, classes", [(100, 90, 10), (50, 30, 2), (20, 1, 100), (64, 40, 4), (7, 7, 3)]
)
def test_binomial_tail_matches_direct_summation_and_scipy(trials: int, at_least: int, classes: int) -> None:
    exact = binomial_tail(trials, at_least, classes)
    assert isinstance(exact, Fraction)
    assert float(exact) == pytest.approx(direct_tail(trials, at_least, classes), rel=1e-9)
    assert float(exact) == pytest.approx(binom.sf(at_least - 1, trials, 1 / classes), rel=1e-9)


def test_binomial_tail_small_case_by_enumeration() -> None:
    # 3 triggers, 2 classes: P[>= 2 agree] = (3 + 1) / 8.
    assert binomial_tail(3, 2, 2) == Fraction(1, 2)
    assert binomial_tail(3, 0, 2) == 1 and binomial_tail(3, 4, 2) == 0


def test_paper_setting_figures() -> None:
    figures = security_figures(100, 10, 0.1)
    assert (figures.threshold, figures.max_disagreements) == (90, 10)
    assert figures.chance_probability == pytest.approx(binom.sf(89, 100, 0.1), rel=1e-9)
    assert figures.chance_log2 == pytest.approx(math.log2(binom.sf(89, 100, 0.1)), abs=1e-6)
    # Far below float range the log still carries the magnitude.
    tiny = security_figures(5000, 1000, 0.0)
    assert tiny.chance_probability == 0.0
    assert tiny.chance_log2 == pytest.approx(-5000 * math.log2(1000))


def test_threshold_uses_the_decimal_epsilon() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; the rule means floor(29) disagreements.
    assert max_disagreements(100, 0.29) == 29
    assert acceptance_threshold(100, 0.29) == 71
    assert acceptance_threshold(10, 0.0) == 10
    with pytest.raises(ModeldeedError):
        acceptance_threshold(10, 1.0)


@pytest.mark.parametrize(
    "bits, classes, epsilon",
    [(64, 10, 0.1), (20, 2, 0.1), (64, 2, 0.25), (128, 100, 0.5), (32, 10, 0.0), (64, 10, 0.5)],
)
def test_minimum_size_is_tight_and_stable(bits: int, classes: int, epsilon: float) -> None:
    target = 2.0**-bits
    size = minimum_trigger_set_size(bits, classes, epsilon)
    first = minimum_trigger_set_size(bits, classes, epsilon, stable=False)
    assert chance_probability(size, classes, epsilon) <= target
    assert size == 1 or chance_probability(size - 1, classes, epsilon) > target
    assert all(chance_probability(t, classes, epsilon) > target for t in range(1, first))
    assert chance_probability(first, classes, epsilon) <= target
    assert first <= size <= hoeffding_size(bits, classes, epsilon)
    assert all(
        chance_probability(t, classes, epsilon) <= target
        for t in range(size, chernoff_size(bits, classes, epsilon) + 50)
    )


def test_sawtooth_case_differs() -> None:
    # 2 classes, eps = 0.1, 2^-20: 29 passes, 30-32 fail again (floor(eps*T) grows to 3), 33 on all pass.
    assert minimum_trigger_set_size(20, 2, 0.1, stable=False) == 29
    assert minimum_trigger_set_size(20, 2, 0.1) == 33
    assert chance_probability(30, 2, 0.1) > 2.0**-20


def test_hoeffding_bound_is_the_corrected_formula() -> None:
    # n ln2 / (2 (1 - eps - 1/|L|)^2) with n = 64, |L| = 10, eps = 0.1: 64 * 0.6931 / (2 * 0.64) = 34.66
    assert hoeffding_size(64, 10, 0.1) == 35


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ModeldeedError, match="epsilon must be below 0.5"):
        minimum_trigger_set_size(64, 2, 0.5)
    with pytest.raises(ModeldeedError):
        binomial_tail(10, 5, 1)
