"""Holm's adjustment, the paired TOST, the power calculations and the verdicts, against hand
computations and simulation; learning accuracy and intransigence against a hand-made record."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alpha_mas_avalanche.experiment.report.frames import intransigence, learning_accuracies
from alpha_mas_avalanche.experiment.report.significance import (
    adjust_family,
    compare_paired,
    holm,
    minimal_detectable_difference,
    seeds_to_decide,
    tost_paired,
    verdict,
)


def test_holm_by_hand():
    # sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1, raised to the running maximum)
    assert holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_tost_is_the_larger_of_two_one_sided_t_tests_by_hand():
    d = np.array([0.002, -0.004, 0.001, 0.003, -0.001])
    margin = 0.01
    se = d.std(ddof=1) / math.sqrt(d.size)
    lower = stats.t.sf((d.mean() + margin) / se, d.size - 1)  # H0: mean <= -margin
    upper = stats.t.cdf((d.mean() - margin) / se, d.size - 1)  # H0: mean >= margin
    assert tost_paired(d, margin) == pytest.approx(max(lower, upper), rel=1e-9)
    assert tost_paired(np.array([0.1]), margin) is None
    assert tost_paired(np.full(4, 0.2), margin) is None  # identical differences: no test


@pytest.mark.parametrize("n", [5, 10])
def test_the_minimal_detectable_difference_is_detected_80_percent_of_the_time(n):
    mde = minimal_detectable_difference(1.0, n)
    draws = np.random.default_rng(n).normal(mde, 1.0, size=(40_000, n))
    power = (stats.ttest_1samp(draws, 0.0, axis=1).pvalue < 0.05).mean()
    assert abs(power - 0.8) < 0.01  # the simulation's standard error is 0.002
    assert minimal_detectable_difference(2.0, n) == pytest.approx(2 * mde)
    assert minimal_detectable_difference(0.0, n) is None


def test_seeds_to_decide_gives_80_percent_power_and_one_seed_fewer_does_not_by_much():
    rng = np.random.default_rng(7)

    def tost_power(n):
        draws = rng.normal(0.2, 1.0, size=(40_000, n))
        lower = stats.ttest_1samp(draws, -1.0, alternative="greater", axis=1).pvalue
        upper = stats.ttest_1samp(draws, 1.0, alternative="less", axis=1).pvalue
        return (np.maximum(lower, upper) < 0.05).mean()

    n = seeds_to_decide(0.2, 1.0, 1.0)  # |mean| < margin: seeds for the TOST
    assert tost_power(n) > 0.79 and tost_power(n - 2) < 0.8
    n = seeds_to_decide(1.5, 1.0, 1.0)  # |mean| >= margin: seeds for the t-test
    draws = rng.normal(1.5, 1.0, size=(40_000, n))
    assert (stats.ttest_1samp(draws, 0.0, axis=1).pvalue < 0.05).mean() > 0.79
    assert seeds_to_decide(1.0, 1.0, 1.0) is not None  # on the margin: the t-test decides
    assert seeds_to_decide(0.3, 0.0, 1.0) is None


def test_verdicts_and_a_family():
    assert verdict(0.02, 0.01, None, higher_is_better=True) == "better"
    assert verdict(0.02, 0.01, None, higher_is_better=False) == "worse"
    assert verdict(0.001, 0.4, 0.01, higher_is_better=True) == "equivalent"
    assert verdict(0.001, 0.4, 0.2, higher_is_better=True) == "inconclusive"
    a = np.array([0.80, 0.82, 0.81, 0.79, 0.80])
    big = compare_paired(a, a - np.array([0.05, 0.06, 0.055, 0.05, 0.06]), 0.01)
    small = compare_paired(a, a - np.array([0.001, -0.002, 0.0, 0.001, -0.001]), 0.01)
    assert big["p_value"] == pytest.approx(stats.ttest_rel(a, a - np.array(
        [0.05, 0.06, 0.055, 0.05, 0.06])).pvalue)
    family = adjust_family([{**big, "higher_is_better": True}, {**small, "higher_is_better": True}],
                           "two tests")
    assert [c["verdict"] for c in family] == ["better", "equivalent"]
    assert family[0]["p_holm"] == pytest.approx(min(1.0, 2 * big["p_value"]))
    assert all(c["family"] == "two tests" and c["family_size"] == 2 for c in family)


def test_a_familys_detectable_difference_and_seeds_are_at_holms_strictest_level():
    """In a family of m tests a p-value under 0.05 / m is rejected by Holm whatever the
    other tests show; the smallest detectable difference and the seeds to decide are given
    at that level, so the seeds named do decide the adjusted verdict."""
    rng = np.random.default_rng(3)
    tests = [{**compare_paired(rng.normal(0.8, 0.01, 10) + shift, rng.normal(0.8, 0.01, 10), 0.01),
              "higher_is_better": True} for shift in (0.0, 0.003, 0.01, 0.02)]
    family = adjust_family(tests, "four tests")
    for raw, adjusted in zip(tests, family):
        assert adjusted["decision_level"] == pytest.approx(0.05 / 4)
        assert adjusted["mde_80"] == pytest.approx(minimal_detectable_difference(
            raw["sd_difference"], 10, alpha=0.05 / 4))
        # stricter than one test at 0.05
        assert adjusted["mde_80"] > minimal_detectable_difference(raw["sd_difference"], 10)
        assert adjusted["seeds_to_decide"] == seeds_to_decide(
            raw["mean_difference"], raw["sd_difference"], 0.01, alpha=0.05 / 4)
    flat = compare_paired(np.full(5, 0.8), np.full(5, 0.79), 0.01)  # no spread: no power
    assert "mde_80" not in flat and flat["p_value"] is None
    assert adjust_family([{**flat, "higher_is_better": True}], "one")[0]["mde_80"] is None
    ps = [0.05 / 4 * 0.99, 0.5, 0.9, 0.04]  # the first is rejected whatever the others are
    assert holm(ps)[0] < 0.05
    assert minimal_detectable_difference(1.0, 2, alpha=0.05 / 64) > 50  # found, not a crash


def test_learning_accuracy_and_intransigence_by_hand():
    run = {"task_order": [2, 0, 1], "final_acc": [0.5, 0.6, 0.9],
           "acc_matrix": [[0.9, None, None], [0.7, 0.8, None], [0.5, 0.6, 0.9]]}
    assert learning_accuracies(run) == [0.9, 0.8, 0.9]
    single = {2: 0.95, 0: 0.85, 1: 0.9}
    # by training position: pair 2 (0.95 - 0.9), pair 0 (0.85 - 0.8), pair 1 (0.9 - 0.9)
    assert intransigence(run, single) == pytest.approx((0.05 + 0.05 + 0.0) / 3)
    assert intransigence(run, {2: 0.95, 0: 0.85}) is None  # a single-task run missing
