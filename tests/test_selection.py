"""Validation grids: extension at an edge, the bound, the no-effect guard, several seeds,
the refinement to thirds of a decade, final runs waiting for their choice (hand-made
validation scores; no training)."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.specs import final_specs
from alpha_mas_avalanche.experiment.selection import (
    choose_hyperparameters,
    final_grids,
    selection_specs,
    settle_grids,
    grid_effect_p,
    initial_grids,
)
from alpha_mas_avalanche.experiment.report import display_label
from alpha_mas_avalanche.experiment.records import load_records, record_paths
from alpha_mas_avalanche.experiment.store import write_record


def _config(grid, extensions=2, seeds=(0, 1), refine=False):
    return ExperimentConfig(
        benchmark="split_digits", seeds=list(seeds), selection_seeds=list(seeds),
        grid_extensions=extensions,
        methods=[MethodConfig("mas", select={"lambda_reg": grid}, refine=refine),
                 MethodConfig("alpha_mas_per_task")])


def _records(config, grids, score):
    """Validation records whose accuracy is ``score(lambda, seed)``."""
    return {s.run_id: {"final_avg_acc": score(s.params["lambda_reg"], s.seed)}
            for s in selection_specs(config, grids)}


def _run_until_settled(config, score):
    """What the grid driver does: run the grid's runs, extend, repeat."""
    grids, records, rounds = initial_grids(config), {}, 0
    while True:
        records.update(_records(config, grids, score))
        grown = settle_grids(config, grids, records)
        if grown == grids:
            return grids, records, rounds
        grids, rounds = grown, rounds + 1


def test_best_value_at_the_upper_edge_grows_the_grid_a_decade_at_a_time_until_inside():
    config = _config([0.1, 1.0, 10.0])
    peak = 100.0  # accuracy peaks at lambda = 100, outside the first grid
    grids, records, rounds = _run_until_settled(
        config, lambda lam, seed: 0.9 - 0.01 * abs(math.log10(lam / peak)) + 0.001 * seed)
    assert grids["mas"]["lambda_reg"] == [0.1, 1.0, 10.0, 100.0, 1000.0]
    assert rounds == 2
    chosen = choose_hyperparameters(config, records)["mas"]
    assert chosen["chosen"] == {"lambda_reg": 100.0}
    assert chosen["grid"] == {"lambda_reg": [0.1, 1.0, 10.0, 100.0, 1000.0]}
    assert chosen["at_grid_edge"] is False and chosen["no_effect"] is False
    # mean over the two selection seeds
    assert chosen["valid_acc"]['{"lambda_reg": 100.0}'] == pytest.approx(0.9005)


def test_a_resumed_grid_with_more_extensions_grows_on_from_its_finished_runs():
    """What resuming with a raised ``grid_extensions`` does: the runs of the first settling
    are kept, the grid grows further, and the choice moves inside it."""
    def score(lam, seed):
        return 0.9 - 0.01 * abs(math.log10(lam / 1e-4))  # peak three decades below the grid

    first, records, _ = _run_until_settled(_config([0.1, 1.0], extensions=2), score)
    assert first["mas"]["lambda_reg"] == [0.001, 0.01, 0.1, 1.0]
    resumed = _config([0.1, 1.0], extensions=4)
    grids, more, _ = _run_until_settled(resumed, score)
    assert set(records) < set(more)  # every earlier run is among the resumed grid's runs
    assert grids["mas"]["lambda_reg"] == [1e-5, 1e-4, 0.001, 0.01, 0.1, 1.0]
    chosen = choose_hyperparameters(resumed, more)["mas"]
    assert chosen["chosen"] == {"lambda_reg": 1e-4} and chosen["at_grid_edge"] is False


def test_extension_stops_at_its_bound_and_the_choice_is_marked_at_grid_edge():
    config = _config([1.0, 10.0], extensions=1)
    grids, records, _ = _run_until_settled(config, lambda lam, seed: 0.5 - lam / 1e4)
    assert grids["mas"]["lambda_reg"] == [0.1, 1.0, 10.0]
    chosen = choose_hyperparameters(config, records)["mas"]
    assert chosen["chosen"] == {"lambda_reg": 0.1} and chosen["at_grid_edge"] is True


def test_identical_scores_mean_no_effect_and_no_extension():
    config = _config([1.0, 100.0])
    grids, records, rounds = _run_until_settled(config, lambda lam, seed: 0.8982)
    assert rounds == 0 and grids["mas"]["lambda_reg"] == [1.0, 100.0]
    assert choose_hyperparameters(config, records)["mas"]["no_effect"] is True
    assert choose_hyperparameters(config, records)["mas"]["grid_effect_p"] == 1.0


def test_grid_effect_p_is_a_two_way_analysis_of_variance_computed_by_hand():
    # values x seeds [[1, 3], [2, 4], [6, 6]]: grand mean 22/6; SS values 52/3, SS seeds 8/3,
    # SS total 64/3, so SS residual 4/3 on 2 df; F = (52/3 / 2) / (4/3 / 2) = 13, and the
    # F(2, 2) tail is 1 / (1 + F)
    table = {"a": [0.01, 0.03], "b": [0.02, 0.04], "c": [0.06, 0.06]}
    assert grid_effect_p(table) == pytest.approx(1 / 14)
    # two values: the paired t-test over the seeds (F = t^2)
    pair = {"a": [0.71, 0.74, 0.70, 0.78], "b": [0.73, 0.74, 0.75, 0.77]}
    assert grid_effect_p(pair) == pytest.approx(stats.ttest_rel(*pair.values()).pvalue)
    # nothing to test: one seed, one value, a diverged run
    assert grid_effect_p({"a": [0.7], "b": [0.8], "c": [0.9]}) is None
    assert grid_effect_p({"a": [0.7, 0.8]}) is None
    assert grid_effect_p({"a": [0.7, None], "b": [0.8, 0.9]}) is None
    # values apart by the same amount on every seed: no noise, p 0
    assert grid_effect_p({"a": [0.5, 0.6], "b": [0.7, 0.8]}) == 0.0


def test_a_grid_of_seed_noise_is_within_noise_and_a_responsive_grid_is_not():
    """Class-incremental Split MNIST's grids: every value near 20 %, the best of noise."""
    def noise(lam, seed):
        return 0.005 * math.sin(7 * math.log10(lam) + 3 * seed)

    config = _config([0.1, 1.0, 10.0, 100.0], extensions=0, seeds=(0, 1, 2))
    _, records, _ = _run_until_settled(config, lambda lam, seed: 0.2 + noise(lam, seed))
    flat = choose_hyperparameters(config, records)["mas"]
    assert flat["no_effect"] is False and flat["grid_effect_p"] > 0.5
    assert display_label("MAS", "mas", {}, flat).endswith(
        f"; within noise, grid p {flat['grid_effect_p']:.2f})")
    _, records, _ = _run_until_settled(config, lambda lam, seed: _peak(3.0)(lam, seed)
                                       + noise(lam, seed))
    peaked = choose_hyperparameters(config, records)["mas"]
    assert peaked["grid_effect_p"] < 0.001
    assert display_label("MAS", "mas", {}, peaked) == "MAS (λ=1 chosen)"


def test_a_tie_goes_to_the_value_later_in_the_grid():
    """As on Split CIFAR-10, where MAS at 0.01 and 0.1 tied at 85.72 %: the later (stronger)
    value wins, whether it is written first or last in the config and whatever its text."""
    tied = {0.01: 0.8572, 0.1: 0.8572, 1.0: 0.8172, 10.0: 0.8373}
    config = _config([0.01, 0.1, 1.0, 10.0])
    _, records, _ = _run_until_settled(config, lambda lam, seed: tied[lam])
    assert choose_hyperparameters(config, records)["mas"]["chosen"] == {"lambda_reg": 0.1}
    # 5 and 10 tie: grid order, not the text ("5.0" sorts after "10.0"), decides
    config = _config([1.0, 5.0, 10.0, 20.0], extensions=0)
    _, records, _ = _run_until_settled(config, lambda lam, seed: 0.5 if lam in (5.0, 10.0) else 0.4)
    assert choose_hyperparameters(config, records)["mas"]["chosen"] == {"lambda_reg": 10.0}


def test_a_report_on_a_stopped_grid_uses_only_finished_extensions():
    config = _config([0.1, 1.0, 10.0])
    records = _records(config, initial_grids(config), lambda lam, seed: lam)  # best at 10
    assert final_grids(config, records) == initial_grids(config)
    chosen = choose_hyperparameters(config, records)["mas"]
    assert chosen["chosen"] == {"lambda_reg": 10.0} and chosen["at_grid_edge"] is True
    # one selection seed of the extension missing: nothing is chosen on part of a grid
    grown = settle_grids(config, initial_grids(config), records)
    partial = {**records, **{k: v for k, v in _records(config, grown, lambda lam, s: lam).items()
                             if "seed0" in k}}
    assert final_grids(config, partial) == initial_grids(config)


def test_a_method_with_a_grid_waits_for_its_choice_and_then_runs_at_it():
    config = ExperimentConfig(
        benchmark="split_digits", seeds=[0, 1],
        methods=[MethodConfig("mas", select={"lambda_reg": [0.1, 1.0]}),
                 MethodConfig("alpha_mas_per_task", select={"lambda_reg": [0.1, 1.0]}),
                 MethodConfig("naive", seeds=[0, 1, 2])])
    assert {s.method for s in final_specs(config)} == {"naive"}
    chosen = {"mas": {"chosen": {"lambda_reg": 1.0}}}
    specs = final_specs(config, chosen)
    assert {s.method for s in specs} == {"mas", "naive"}  # the ablation has its own grid
    assert sorted(s.seed for s in specs if s.method == "naive") == [0, 1, 2]
    assert all(s.params == {"lambda_reg": 1.0} for s in specs if s.method == "mas")
    assert [s.seed for s in specs] == sorted(s.seed for s in specs)  # whole seeds first


def _peak(peak):
    return lambda lam, seed: 0.9 - 0.05 * abs(math.log10(lam / peak)) + 0.001 * seed


def test_refinement_adds_thirds_of_a_decade_around_the_settled_decade_choice_once():
    config = _config([0.1, 1.0, 10.0], refine=True)
    grids, records, rounds = _run_until_settled(config, _peak(0.0003))
    # two decade extensions down to 0.001, then the refinement (one round each)
    assert rounds == 3
    assert grids["mas"]["lambda_reg"] == [0.0002154, 0.0004642, 0.001, 0.002154, 0.004642,
                                          0.01, 0.1, 1.0, 10.0]
    chosen = choose_hyperparameters(config, records)["mas"]
    # 0.001 is the decade choice at the bound of two extensions; the refined value below it
    # wins, beyond the decade grid's edge, and says so
    assert chosen["chosen"] == {"lambda_reg": 0.0002154} and chosen["at_grid_edge"] is True


def test_a_refined_value_can_win_and_is_inside_the_decade_grid():
    config = _config([0.1, 1.0, 10.0, 100.0], refine=True)
    grids, records, rounds = _run_until_settled(config, _peak(3.0))
    assert rounds == 1
    assert grids["mas"]["lambda_reg"] == [0.1, 0.2154, 0.4642, 1.0, 2.154, 4.642, 10.0, 100.0]
    chosen = choose_hyperparameters(config, records)["mas"]
    assert chosen["chosen"] == {"lambda_reg": 2.154}  # |log10(2.154/3)| < |log10(4.642/3)|
    assert chosen["at_grid_edge"] is False
    # a report on the decade runs alone (refinement not run yet) chooses among decades
    decades = {k: v for k, v in records.items() if any(f"lambda_reg={d:g}_" in k
                                                        for d in (0.1, 1.0, 10.0, 100.0))}
    assert choose_hyperparameters(config, decades)["mas"]["chosen"] == {"lambda_reg": 1.0}


def test_refine_needs_one_positive_numeric_grid():
    with pytest.raises(ValueError, match=r"methods\[mas\]\.refine"):
        MethodConfig("mas", refine=True)
    with pytest.raises(ValueError, match=r"methods\[mas\]\.refine: expected true or false"):
        MethodConfig("mas", select={"lambda_reg": [1.0]}, refine="yes")


def test_grid_extensions_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="grid_extensions"):
        _config([1.0, 10.0], extensions=-1)


@pytest.mark.slow
def test_a_real_digits_grid_grows_at_its_edge_and_flags_avalanche_si_as_no_effect(tmp_path, capfd):
    """Real runs: MAS's two-value grid has its best at an edge, so it grows one decade (the
    bound); Avalanche's SI gives the same validation score at every strength on CPU. The
    progress bar's total ends equal to the runs made (the grown grid included); the ablation,
    given no grid of its own here, runs at its registry default."""
    import json
    import re

    from alpha_mas_avalanche.experiment.grid import report_finished, run_experiment

    config = ExperimentConfig(
        benchmark="split_digits", epochs=1, batch_size=32, seeds=[0], grid_extensions=1,
        output_dir=str(tmp_path / "out"),
        methods=[MethodConfig("mas", select={"lambda_reg": [0.01, 1.0]}),
                 MethodConfig("alpha_mas_per_task"),
                 MethodConfig("si_avalanche", select={"si_lambda": [1.0, 100.0]})])
    summary = run_experiment(config, report=False)
    made = sum(len(record_paths(tmp_path / "out" / f)) for f in ("runs", "single_task"))
    assert made == 3 + 2 + 5 + 3  # MAS grid grown to 3, SI's 2, 5 single-task, 3 final
    err = capfd.readouterr().err
    assert re.findall(r"(\d+)/(\d+) \[", err)[-1] == (str(made), str(made))
    # and its description counts the same runs: 3 final, 5 single-task, 5 validation
    assert err.rsplit("\r", 1)[-1].startswith(
        "compare_baselines: 3 runs + 5 single-task references + 5 validation-grid runs")
    selection = json.loads((tmp_path / "out" / "selection.json").read_text())
    mas = selection["mas"]
    assert len(mas["grid"]["lambda_reg"]) == 3 and not mas["no_effect"]
    extended = [v for v in mas["grid"]["lambda_reg"] if v not in (0.01, 1.0)][0]
    assert extended in (0.001, 10.0)
    assert any((tmp_path / "out" / "runs").glob(f"select__mas__lambda_reg={extended:g}__*"))
    assert selection["si_avalanche"]["no_effect"] is True
    assert len(set(selection["si_avalanche"]["valid_acc"].values())) == 1
    assert summary["waiting_methods"] == []
    ablation, = load_records(tmp_path / "out" / "runs", "final__alpha_mas_per_task__")
    assert ablation["params"] == {}  # no grid of its own: the registry default, not MAS's choice
    # a record written under an older registry's label (resumed, as the run is the same)
    # joins its method's row under today's label
    path, = record_paths(tmp_path / "out" / "runs", "final__alpha_mas_per_task__")
    write_record(path, {**ablation, "label": "AlphaMAS (per-task, MAS's λ)"})
    report = report_finished(config)
    assert "AlphaMAS (per-task)" in report["methods"]
    assert not any("MAS's λ" in label for label in report["methods"])
    # the report of the finished folder sees the same grown grid
    assert report["selection"]["mas"]["grid"] == mas["grid"]
