"""The reproductions' one statistics module: Student-t and Welch intervals against their formulas."""

import math

import numpy as np
import pytest

from initbench.benchmarks.reproduce._stats import ci, difference, mean_se, t_quantile


def test_t_quantiles_are_the_tables():
    # two-sided 95%: 12.706 (1 dof), 4.303 (2), 2.776 (4), 2.228 (10), 1.960 (normal)
    for dof, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (math.inf, 1.960)):
        assert t_quantile(dof) == pytest.approx(value, abs=5e-4)
    assert math.isnan(t_quantile(0))


def test_one_seed_has_no_interval_and_no_comparison_passes():
    assert math.isnan(mean_se([0.9])[1]) and ci([0.9]) == (0.9, math.inf)
    d = difference([0.9], [0.1, 0.2])
    assert math.isnan(d.half) and not d.better() and not d.within(1.0)


def test_welch_degrees_of_freedom_and_half_width_follow_the_formula():
    a, b = np.array([1.0, 2.0, 4.0, 7.0]), np.array([0.5, 0.6, 0.4])
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    d = difference(a, b)
    assert d.value == pytest.approx(a.mean() - b.mean()) and d.dof == pytest.approx(dof)
    assert d.half == pytest.approx(t_quantile(dof) * math.sqrt(va + vb))
    assert d.low == pytest.approx(d.value - d.half) and d.high == pytest.approx(d.value + d.half)


def test_a_large_gap_between_noisy_arms_is_not_within_the_margin():
    # the case: at 2 seeds a "2 SE" tolerance allowed a 0.73 accuracy gap; the interval does not
    good, scheme = [0.97, 0.98], [0.0, 0.96]
    old_rule = 0.975 - 0.48 <= 2 * math.hypot(mean_se(good)[1], mean_se(scheme)[1])
    assert old_rule  # what the fixed-SE rule let through
    assert not difference(good, scheme).within(0.02)


def test_a_clear_gap_is_better_and_a_small_one_is_within():
    good, bad, close = [0.955, 0.96, 0.965], [0.10, 0.11, 0.09], [0.958, 0.96, 0.962]
    assert difference(good, bad).better() and not difference(bad, good).better()
    assert difference(good, close).within(0.02) and not difference(good, bad).within(0.02)


def test_a_non_finite_arm_makes_every_comparison_fail():
    d = difference([0.9, float("nan")], [0.1, 0.2])
    assert math.isnan(d.value) and not d.better() and not d.within(1.0)


def test_a_scalar_is_one_seed_and_more_dimensions_or_a_bad_extra_variance_are_refused():
    assert mean_se(3.0)[0] == 3.0 and math.isnan(mean_se(3.0)[1]) and ci(3.0) == (3.0, math.inf)
    with pytest.raises(ValueError, match="one value per seed"):
        mean_se([[1.0, 2.0], [3.0, 4.0]])
    for bad in (math.nan, -0.1):  # a nan variance once made the interval 0 wide: a certain pass
        with pytest.raises(ValueError, match="extra_var must be a variance"):
            difference([1.0, 2.0], [0.0, 1.0], extra_var=bad)
