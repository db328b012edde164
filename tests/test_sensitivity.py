"""Sensitivity curves and their peaks, on hand-made records; the runs a method with
``sensitivity`` adds (every grid value at its first three seeds, the chosen value's shared with
the final runs)."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.report.sensitivity import (
    compare_peaks, curves, is_flat, peak, reading_text,
)
from alpha_mas_avalanche.experiment.specs import final_specs, sensitivity_specs


def _records(method, stream, accuracies):
    """``{λ: [acc per seed]}`` as records."""
    return [{"method": method, "params": {"lambda_reg": lam}, "final_avg_acc": acc,
             "eval_stream": stream} for lam, accs in accuracies.items() for acc in accs]


def test_curves_and_peaks_by_hand():
    chosen = {"mas": {"grid": {"lambda_reg": [0.01, 0.1, 1.0]}, "chosen": {"lambda_reg": 0.1}},
              "alpha_mas": {"grid": {"lambda_reg": [0.1, 1.0, 10.0]}, "chosen": {"lambda_reg": 1.0}}}
    test = (_records("mas", "test", {0.01: [0.70, 0.72, 0.74], 0.1: [0.80, 0.82, 0.84],
                                     1.0: [0.60, 0.62, 0.64]})
            + _records("alpha_mas", "test", {0.1: [0.5, 0.5, 0.5], 1.0: [0.81, 0.83, 0.85],
                                             10.0: [0.7, 0.7, 0.7]}))
    valid = _records("mas", "valid", {0.01: [0.7], 0.1: [0.9], 1.0: [0.8]})
    found = curves(chosen, valid, test, ["mas", "alpha_mas"])
    assert found["mas"]["values"] == [0.01, 0.1, 1.0] and found["mas"]["chosen"] == 0.1
    assert found["mas"]["test"][1]["mean"] == pytest.approx(0.82)
    assert found["mas"]["test"][1]["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3))
    assert found["alpha_mas"]["valid"][0]["n"] == 0  # no validation record given
    assert peak(found["mas"], "valid")["value"] == 0.1
    (comparison,) = compare_peaks(found)
    assert comparison["shift_decades"] == pytest.approx(1.0)
    assert comparison["height_difference"] == pytest.approx(0.01)
    # intervals of ±0.05 around 0.82 and 0.83 overlap: the curve moved a decade along λ
    assert comparison["reading"] == "scaling" and "moved along λ" in reading_text(comparison)


def test_a_higher_peak_beyond_the_intervals_is_a_matter_of_the_method():
    chosen = {m: {"grid": {"lambda_reg": [1.0]}, "chosen": {"lambda_reg": 1.0}}
              for m in ("mas", "alpha_mas")}
    test = (_records("mas", "test", {1.0: [0.80, 0.801, 0.802]})
            + _records("alpha_mas", "test", {1.0: [0.90, 0.901, 0.902]}))
    (comparison,) = compare_peaks(curves(chosen, [], test, ["mas", "alpha_mas"]))
    assert comparison["reading"] == "method" and "different peak" in reading_text(comparison)


def test_curves_that_do_not_respond_to_the_strength_are_read_as_flat():
    """Class-incremental regularisation: every strength gives ~20 %; the peaks' places are
    noise, so neither scaling nor method is read from them."""
    grid = [0.1, 1.0, 10.0]
    chosen = {m: {"grid": {"lambda_reg": grid}, "chosen": {"lambda_reg": 1.0}}
              for m in ("mas", "alpha_mas")}
    test = (_records("mas", "test", {0.1: [0.199, 0.201, 0.200], 1.0: [0.200, 0.204, 0.202],
                                     10.0: [0.198, 0.200, 0.199]})
            + _records("alpha_mas", "test", {0.1: [0.203, 0.207, 0.205], 1.0: [0.199, 0.2, 0.201],
                                             10.0: [0.2, 0.202, 0.204]}))
    found = curves(chosen, [], test, ["mas", "alpha_mas"])
    assert is_flat(found["mas"], "test") and is_flat(found["alpha_mas"], "test")
    (comparison,) = compare_peaks(found)
    assert comparison["reading"] == "flat" and "peak stands out" in reading_text(comparison)
    below = _records("mas", "test", {0.1: [0.10, 0.101, 0.102], 1.0: [0.200, 0.204, 0.202],
                                     10.0: [0.198, 0.200, 0.199]})  # one value far below
    assert not is_flat(curves(chosen, [], below, ["mas"])["mas"], "test")


def test_sensitivity_runs_cover_the_grid_at_three_seeds_and_share_the_final_ones():
    config = ExperimentConfig(
        benchmark="split_digits", seeds=[0, 1, 2, 3, 4],
        methods=[MethodConfig("mas", select={"lambda_reg": [0.1, 1.0, 10.0]}, sensitivity=True),
                 MethodConfig("naive")])
    chosen = {"mas": {"grid": {"lambda_reg": [0.1, 1.0, 10.0]}, "chosen": {"lambda_reg": 1.0}}}
    specs = sensitivity_specs(config, chosen)
    assert sorted((s.params["lambda_reg"], s.seed) for s in specs) == [
        (lam, seed) for lam in (0.1, 1.0, 10.0) for seed in (0, 1, 2)]
    final = {s.run_id for s in final_specs(config, chosen)}
    assert len({s.run_id for s in specs} & final) == 3  # the chosen value's, seeds 0-2
    # the chosen value's runs are final runs (a divergence fails); the others curve points
    assert {s.run_id for s in specs if not s.curve_point} == {s.run_id for s in specs} & final
    with pytest.raises(ValueError, match=r"methods\[naive\]\.sensitivity: true needs a select grid"):
        MethodConfig("naive", sensitivity=True)


def test_the_figures_intervals_stay_within_accuracys_range_and_the_title_says_so():
    """Three seeds near the ceiling: a t-interval of 99 % ± 2 would reach 101 %; the band
    stops at 100 % and the title says the intervals were cut."""
    from matplotlib.collections import PolyCollection

    from alpha_mas_avalanche.experiment.sensitivity_figure import sensitivity_figure

    chosen = {"mas": {"grid": {"lambda_reg": [0.1, 1.0]}, "chosen": {"lambda_reg": 1.0}}}
    grid = {0.1: [0.97, 0.99, 1.0], 1.0: [0.98, 0.985, 0.99]}
    sensitivity = curves(chosen, _records("mas", "valid", grid), _records("mas", "test", grid),
                         ["mas"])
    figure = sensitivity_figure(sensitivity, "Hand-made")
    tops = [vertices[:, 1].max() for ax in figure.axes for c in ax.collections
            if isinstance(c, PolyCollection) for vertices in (c.get_paths()[0].vertices,)]
    half = stats.t.ppf(0.975, 2) * stats.sem([97, 99, 100])
    assert 98.67 + half > 100 and len(tops) == 2 and max(tops) == pytest.approx(100)
    assert "intervals cut to 0-100 %" in figure._suptitle.get_text()
    calm_grid = {0.1: [0.5, 0.51, 0.52], 1.0: [0.6, 0.61, 0.62]}
    calm = curves(chosen, _records("mas", "valid", calm_grid), _records("mas", "test", calm_grid),
                  ["mas"])
    assert "cut" not in sensitivity_figure(calm, "Hand-made")._suptitle.get_text()


def test_stars_of_methods_that_chose_the_same_strength_nest_instead_of_hiding():
    """MAS and AlphaMAS both choosing λ = 1: two stars at the same point, the later one smaller
    and drawn above, so the reader sees both."""
    from alpha_mas_avalanche.experiment.sensitivity_figure import sensitivity_figure

    grid = {0.1: [0.5, 0.51, 0.52], 1.0: [0.6, 0.61, 0.62]}
    chosen = {m: {"grid": {"lambda_reg": [0.1, 1.0]}, "chosen": {"lambda_reg": 1.0}}
              for m in ("mas", "alpha_mas")}
    records = {stream: _records("mas", stream, grid) + _records("alpha_mas", stream, grid)
               for stream in ("valid", "test")}
    figure = sensitivity_figure(curves(chosen, records["valid"], records["test"],
                                       ["mas", "alpha_mas"]), "Hand-made")
    for ax in figure.axes:
        stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert [c for line in stars for c in line.get_xydata()[0]] == pytest.approx([1, 61, 1, 61])
        (first, second) = stars
        assert second.get_markersize() < first.get_markersize()
        assert second.get_zorder() > first.get_zorder()


def test_a_strength_where_a_seed_diverged_has_no_point_and_a_cross_on_the_floor():
    """λ = 10 diverged at one of three seeds: averaging the two survivors would show a
    strength that does not train as a good one; the curve leaves it out and marks it."""
    from alpha_mas_avalanche.experiment.sensitivity_figure import sensitivity_figure

    chosen = {"mas": {"grid": {"lambda_reg": [0.1, 1.0, 10.0]}, "chosen": {"lambda_reg": 1.0}}}
    test = _records("mas", "test", {0.1: [0.5, 0.51, 0.52], 1.0: [0.6, 0.61, 0.62],
                                    10.0: [0.9, 0.91]})
    test.append({"method": "mas", "params": {"lambda_reg": 10.0}, "final_avg_acc": None,
                 "eval_stream": "test", "diverged": "training diverged in experience 1"})
    valid = _records("mas", "valid", {0.1: [0.5], 1.0: [0.6], 10.0: [0.7]})
    found = curves(chosen, valid, test, ["mas"])["mas"]
    assert [s["n"] for s in found["test"]] == [3, 3, 0] and found["test"][2]["mean"] is None
    assert found["diverged"] == {"valid": [0, 0, 0], "test": [0, 0, 1]}
    assert peak(found, "test")["value"] == 1.0  # not the two survivors' 90.5 %
    figure = sensitivity_figure({"mas": found}, "Hand-made")
    valid_ax, test_ax = figure.axes
    crosses = [line for line in test_ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [10.0]
    assert not [line for line in valid_ax.get_lines() if line.get_marker() == "x"]
    assert "✕ training diverged" in figure._suptitle.get_text()
    assert test_ax.get_ylim()[0] > 40  # the cross sits on the floor without moving the axis (band ~48-63 %)
