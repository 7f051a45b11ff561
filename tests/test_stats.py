"""Wilson interval, exact McNemar and paired differences against values worked out by hand."""

import math

import pytest

from bench.stats import mcnemar_exact, paired_difference, wilson_interval


def test_wilson_7_of_10_by_hand():
    # p = 0.7, z^2 = 3.8415: centre = (0.7 + 0.19207) / 1.38415 = 0.64449,
    # half = 1.96 * sqrt(0.021 + 0.0096037) / 1.38415 = 0.24772.
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.3968, abs=1e-4)
    assert hi == pytest.approx(0.8922, abs=1e-4)


def test_wilson_all_successes_and_none():
    # 4/4: centre = (1 + 0.48019) / 1.96037 = 0.75506, half = 1.96 * 0.24500 / 1.96037.
    lo, hi = wilson_interval(4, 4)
    assert lo == pytest.approx(0.5101, abs=1e-4)
    assert hi == 1.0
    lo, hi = wilson_interval(0, 4)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.5101, abs=1e-4)


def test_wilson_no_episodes_has_no_interval():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_mcnemar_exact_by_hand():
    # b=1, c=6: P(X <= 1 | n=7, 1/2) = (1 + 7) / 128 = 0.0625, two-sided 0.125.
    assert mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    # b=0, c=5: 2 * (1/32) = 0.0625.
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    # Balanced discordant pairs and no discordant pairs: no evidence, p = 1 (capped).
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_difference_counts_discordant_pairs_on_common_keys():
    base = {i: i < 7 for i in range(10)}  # 7/10
    method = {i: i in (0, 7) for i in range(9)}  # key 9 missing (an error episode)
    d = paired_difference(method, base)
    assert (d.n_pairs, d.b, d.c) == (9, 1, 6)
    assert d.method_successes == 2 and d.baseline_successes == 7
    assert d.diff == pytest.approx(-5 / 9)
    assert d.p_value == pytest.approx(0.125)
    assert paired_difference({}, base).n_pairs == 0
