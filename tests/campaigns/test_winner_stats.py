"""The A/B statistics against figures worked by hand, and their edge cases."""

from __future__ import annotations

import math

import pytest

from ccm.campaigns.stats import Proportion, compare, decide, lift, normal_cdf, z_test


def test_normal_cdf_matches_the_table():
    assert normal_cdf(0.0) == pytest.approx(0.5)
    assert normal_cdf(1.959964) == pytest.approx(0.975, abs=1e-6)
    assert normal_cdf(-1.644854) == pytest.approx(0.05, abs=1e-6)


def test_z_test_matches_a_hand_computation():
    # 200/1000 against 250/1000: pooled p = 450/2000 = 0.225,
    # SE = sqrt(0.225 * 0.775 * (1/1000 + 1/1000)) = 0.0186748, z = -0.05 / SE = -2.67740,
    # two-sided p = 2 * (1 - Φ(2.6774)) = 0.00742.
    z, p = z_test(Proportion(200, 1000), Proportion(250, 1000))
    assert z == pytest.approx(-2.67740, abs=1e-5)
    assert p == pytest.approx(0.00742, abs=1e-5)


def test_z_squared_is_the_chi_square_of_the_two_by_two_table():
    a, b = Proportion(48, 520), Proportion(71, 480)
    observed = [[a.successes, a.trials - a.successes], [b.successes, b.trials - b.successes]]
    total = a.trials + b.trials
    columns = [observed[0][j] + observed[1][j] for j in range(2)]
    chi_square = sum(
        (observed[i][j] - row_total * columns[j] / total) ** 2 / (row_total * columns[j] / total)
        for i, row_total in enumerate((a.trials, b.trials))
        for j in range(2)
    )
    z, p = z_test(a, b)
    assert z**2 == pytest.approx(chi_square)
    # a chi-square with one degree of freedom: P(X > x) = erfc(sqrt(x / 2))
    assert p == pytest.approx(math.erfc(math.sqrt(chi_square / 2)))


def test_a_small_difference_on_a_small_sample_is_not_significant():
    result = compare(Proportion(11, 100), Proportion(10, 100))
    assert result.lift == pytest.approx(0.1)
    assert not result.significant
    assert result.p_value > 0.5


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Proportion(0, 0), Proportion(5, 10)),  # nothing sent
        (Proportion(0, 0), Proportion(0, 0)),
        (Proportion(10, 10), Proportion(20, 20)),  # everyone opened
        (Proportion(0, 10), Proportion(0, 20)),  # nobody opened
    ],
)
def test_no_evidence_gives_no_significance(a, b):
    z, p = z_test(a, b)
    assert (z, p) == (0.0, 1.0)
    assert not compare(a, b).significant


def test_lift_is_unknown_against_a_zero_rate():
    assert lift(0.2, 0.0) is None
    assert lift(None, 0.1) is None
    assert lift(0.15, 0.1) == pytest.approx(0.5)


def test_a_clear_leader_of_two_is_significant():
    decision = decide({"A": Proportion(100, 1000), "B": Proportion(140, 1000)})
    assert decision.best == "B"
    assert decision.significant
    assert decision.confidence > 0.99


def test_three_variants_need_the_leader_to_beat_the_runner_up():
    decision = decide({"A": Proportion(100, 1000), "B": Proportion(140, 1000), "C": Proportion(135, 1000)})
    assert decision.best == "B"
    assert not decision.significant
    assert decision.alpha == pytest.approx(0.025)  # 5 % shared between two comparisons


def test_bonferroni_makes_a_borderline_win_of_three_not_significant():
    # p ≈ 0.035 against each other variant: significant for two variants, not for three
    two = decide({"A": Proportion(100, 1000), "B": Proportion(130, 1000)})
    three = decide({"A": Proportion(100, 1000), "B": Proportion(130, 1000), "C": Proportion(100, 1000)})
    assert two.significant and not three.significant
    assert two.p_value == pytest.approx(three.p_value)


def test_one_variant_is_its_own_best_and_never_significant():
    decision = decide({"A": Proportion(50, 100)})
    assert decision.best == "A"
    assert not decision.significant


def test_variants_without_sends_have_no_best():
    assert decide({"A": Proportion(0, 0), "B": Proportion(0, 0)}).best is None


def test_a_tie_is_not_significant():
    decision = decide({"A": Proportion(100, 1000), "B": Proportion(100, 1000)})
    assert not decision.significant
    assert decision.p_value == pytest.approx(1.0)


def test_equal_rates_go_to_the_first_variant():
    assert decide({"A": Proportion(0, 10), "B": Proportion(0, 500)}).best == "A"
    assert decide({"A": Proportion(0, 0), "B": Proportion(0, 5), "C": Proportion(1, 5)}).best == "C"
