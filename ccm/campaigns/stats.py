"""The statistics behind an A/B test: a two-proportion z-test on rates (opened, clicked, replied
or converted out of the messages that could), in pure Python.

Why this test: every A/B metric CCM measures is a proportion of independent recipients, samples
are large (hundreds to millions), and marketers read "B beats A by 12 %, 97 % confidence". The
pooled two-proportion z-test (the large-sample form of the chi-square test on a 2 × 2 table: z² is
that chi-square) answers exactly that, needs only ``math.erf``, and is what spreadsheets and the
ESPs' "significance calculators" compute, so a figure can be checked by hand. With more than two
variants the best one is compared with each other one and the 5 % is divided among those
comparisons (Bonferroni), so a four-way test is not four chances of a false winner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

ALPHA = 0.05
"""A difference is significant when its two-sided p-value is below this (95 % confidence)."""


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``trials`` (opened out of delivered, converted out of targeted)."""

    successes: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None


@dataclass(frozen=True)
class Comparison:
    """One rate against another: relative lift, z statistic, two-sided p-value, and whether the
    difference is significant at the level it was tested at."""

    rate: float | None
    other_rate: float | None
    lift: float | None
    z: float
    p_value: float
    significant: bool

    @property
    def confidence(self) -> float:
        """``1 - p``: how sure one may be that the two rates differ."""
        return 1.0 - self.p_value


@dataclass(frozen=True)
class Decision:
    """The outcome of a test: the best observed variant, whether it beats every other one
    significantly, and its weakest comparison (against the runner-up)."""

    best: str | None
    significant: bool
    confidence: float
    p_value: float
    alpha: float


def normal_cdf(z: float) -> float:
    """The standard normal distribution function Φ(z)."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def z_test(a: Proportion, b: Proportion) -> tuple[float, float]:
    """The pooled two-proportion z-test of ``a`` against ``b``.

    Returns:
      ``(z, p)``: z is positive when ``a``'s rate is higher; p is two-sided. Without evidence (a
      group with no trials, or every trial alike: all opened or none) z is 0 and p is 1.
    """
    if not a.trials or not b.trials:
        return 0.0, 1.0
    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    variance = pooled * (1.0 - pooled) * (1.0 / a.trials + 1.0 / b.trials)
    if variance <= 0.0:
        return 0.0, 1.0
    z = (a.successes / a.trials - b.successes / b.trials) / math.sqrt(variance)
    return z, min(1.0, 2.0 * (1.0 - normal_cdf(abs(z))))


def lift(rate: float | None, other: float | None) -> float | None:
    """``rate`` relative to ``other`` (0.12 is 12 % better); None when ``other`` is 0 or unknown."""
    if rate is None or not other:
        return None
    return rate / other - 1.0


def compare(a: Proportion, b: Proportion, *, alpha: float = ALPHA) -> Comparison:
    """``a`` against ``b``, significant when p < ``alpha``."""
    z, p = z_test(a, b)
    return Comparison(a.rate, b.rate, lift(a.rate, b.rate), z, p, significant=p < alpha and a.rate != b.rate)


def best_of(groups: Mapping[str, Proportion]) -> str | None:
    """The key with the highest rate (ties: the first key, the control); None when no group has
    a trial."""
    best: tuple[str, float] | None = None
    for key, group in groups.items():
        rate = group.rate
        if rate is not None and (best is None or rate > best[1]):
            best = (key, rate)
    return best[0] if best else None


def decide(groups: Mapping[str, Proportion], *, alpha: float = ALPHA) -> Decision:
    """Whether the best observed group beats every other one: each comparison is tested at
    ``alpha / (k - 1)`` (Bonferroni). One group alone is its own best, never significant."""
    best = best_of(groups)
    others = [group for key, group in groups.items() if key != best]
    if best is None or not others:
        return Decision(best, False, 0.0, 1.0, alpha)
    level = alpha / len(others)
    worst_p = max(z_test(groups[best], other)[1] for other in others)
    beats_all = all(compare(groups[best], other, alpha=level).significant for other in others)
    return Decision(best, beats_all, 1.0 - worst_p, worst_p, level)
