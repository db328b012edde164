"""The alpha-scaling map (S_t spread against AlphaMAS − MAS) on hand-made run records."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml
from scipy import stats

from alpha_mas_avalanche.experiment.records import encode_record
from alpha_mas_avalanche.experiment.report.alpha_map import (
    alpha_map, folder_summary, markdown, task_forgetting,
)
from alpha_mas_avalanche.experiment.spread_figure import write_alpha_map


def _record(method, seed, params, acc_matrix, totals=None, alphas=None, order=(0, 1, 2)):
    return {"method": method, "seed": seed, "params": params, "task_order": list(order),
            "acc_matrix": acc_matrix, "final_avg_acc": sum(acc_matrix[-1]) / len(acc_matrix[-1]),
            "benchmark_name": "Hand-made", "importance_totals_per_experience": [totals or []],
            "alphas_per_experience": [alphas or []]}


def _selection(chosen):
    return {m: {"chosen": {"lambda_reg": v}} for m, v in chosen.items()}


def _write(folder, records, chosen=None, start=0):
    """The records, a config with the main task order and a report (``summary.json``'s
    selection choosing ``chosen``, default MAS λ 1 and AlphaMAS λ 1; ``runs.csv`` listing the
    records), as a finished grid leaves them; record names from ``start``."""
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"task_orders": [[0, 1, 2]]}))
    selection = _selection(chosen or {"mas": 1.0, "alpha_mas": 1.0})
    (folder / "selection.json").write_text(json.dumps(selection))
    (folder / "summary.json").write_text(json.dumps({"selection": selection}))
    run_ids = [f"final__{record['method']}__{k}" for k, record in enumerate(records, start)]
    for run_id, record in zip(run_ids, records):
        (folder / "runs" / f"{run_id}.json.gz").write_bytes(encode_record(record))
    pd.DataFrame({"run_id": run_ids}).to_csv(folder / "runs.csv", index=False)


def test_forgetting_is_accuracy_after_training_minus_final_for_all_but_the_last_task():
    matrix = [[0.9, None, None], [0.8, 0.95, None], [0.7, 0.85, 0.99]]
    assert task_forgetting(matrix) == pytest.approx([0.2, 0.1])


def test_map_row_by_hand(tmp_path):
    folder = tmp_path / "hand"
    mas = [[[0.9, None, None], [0.8, 0.9, None], [0.6, 0.8, 0.9]],
           [[0.9, None, None], [0.85, 0.9, None], [0.7, 0.8, 0.9]]]
    alpha = [[[0.9, None, None], [0.8, 0.9, None], [0.7, 0.8, 0.9]],      # max forgetting 0.2
             [[0.9, None, None], [0.85, 0.9, None], [0.8, 0.85, 0.9]]]    # max forgetting 0.1
    _write(folder, [
        _record("mas", 0, {"lambda_reg": 1.0}, mas[0], totals=[1.0, 1.0, 1.0]),
        _record("mas", 1, {"lambda_reg": 1.0}, mas[1], totals=[1.0, 1.0, 1.0]),
        _record("alpha_mas", 0, {"lambda_reg": 1.0}, alpha[0], totals=[1.0, 4.0, 2.0],
                alphas=[2.0, 0.5, 0.5]),
        _record("alpha_mas", 1, {"lambda_reg": 1.0}, alpha[1], totals=[3.0, 1.0, 2.0],
                alphas=[0.5, 1.5, 1.0]),
        _record("alpha_mas", 0, {"lambda_reg": 2.0}, mas[0], totals=[1.0, 1.0, 1.0]),  # not chosen
        _record("alpha_mas", 0, {"lambda_reg": 1.0}, mas[0], order=(2, 1, 0)),  # not main
        _record("alpha_mas_writeup", 0, {"lambda_multiplier": 1.0}, mas[0]),  # not the map's
    ])
    row = folder_summary(folder)
    assert row["spread_median"] == pytest.approx((4.0 + 3.0) / 2)  # max/min 4 and 3
    final = row["series"]["AlphaMAS"]["final_avg_acc"]
    # final averages: MAS 2.3/3, 2.4/3; AlphaMAS 2.4/3, 2.55/3 -> differences 0.1/3, 0.15/3
    assert final["mean"] == pytest.approx(0.125 / 3) and final["n"] == 2
    half = 0.05 / 3 / 2 * 12.706204736174707  # sem of two values = |d1 - d2| / 2; t(0.975, 1)
    assert final["ci95"] == pytest.approx(half, rel=1e-6)
    # scipy's paired t-test p on the two differences, by hand: t = mean / (|d1 - d2| / 2)
    assert final["p_value"] == pytest.approx(2 * stats.t.sf(0.125 / 3 / (0.05 / 3 / 2), 1))
    forgetting = row["series"]["AlphaMAS"]["max_forgetting"]
    assert forgetting["mean"] == pytest.approx(((0.2 - 0.3) + (0.1 - 0.2)) / 2)
    assert row["series"]["AlphaMAS (per-task)"] is None
    # after-training accuracies 0.9 0.9 0.9 everywhere: no correlation to report
    assert row["mechanism"]["s_vs_learned"] is None
    # alphas 2.0 0.5 | 0.5 1.5 against forgetting 0.2 0.1 | 0.1 0.05, by hand: ranks
    # (4, 1.5, 1.5, 3) and (4, 2.5, 2.5, 1), centred (1.5, -1, -1, 0.5) and (1.5, 0, 0, -1.5):
    # rho = 1.5 / sqrt(4.5 * 4.5) = 1/3
    rho = row["mechanism"]["alpha_vs_forgetting"]["rho"]
    assert math.isclose(rho, 1 / 3, rel_tol=1e-9)
    # per task, medians over the two AlphaMAS seeds: totals / max (0.25 1 0.5), (1 1/3 2/3)
    profile = row["per_task"]
    assert profile["relative_totals"] == pytest.approx([0.625, 2 / 3, 7 / 12])
    assert profile["alphas"] == pytest.approx([1.25, 1.0, 0.75])
    assert profile["learned"] == pytest.approx([0.9, 0.9, 0.9])
    assert profile["forgetting"] == pytest.approx([0.15, 0.075])
    written = write_alpha_map(tmp_path, tmp_path / "out")
    assert [r["folder"] for r in written] == ["hand"]
    cells = written[0]["series"]["AlphaMAS"]  # one family of 2 tests: Holm doubles the smaller p
    assert cells["final_avg_acc"]["family_size"] == 2
    assert min(cells["final_avg_acc"]["p_holm"], cells["max_forgetting"]["p_holm"]) == \
        pytest.approx(2 * min(cells["final_avg_acc"]["p_value"], cells["max_forgetting"]["p_value"]))
    assert json.loads((tmp_path / "out" / "alpha_map.json").read_text())[0]["per_task"] == profile
    assert (tmp_path / "out" / "per_task.png").stat().st_size > 0


def test_runs_at_a_superseded_strength_are_left_out(tmp_path):
    """selection.json chose lambda 10 for MAS and the ablation: their runs at 1 are not compared."""
    folder = tmp_path / "grown"
    good, bad = [[0.9, None], [0.8, 0.9]], [[0.9, None], [0.1, 0.9]]
    _write(folder, [
        _record("mas", 0, {"lambda_reg": 10.0}, good), _record("mas", 1, {"lambda_reg": 10.0}, good),
        _record("mas", 0, {"lambda_reg": 1.0}, bad), _record("mas", 1, {"lambda_reg": 1.0}, bad),
        _record("alpha_mas_per_task", 0, {"lambda_reg": 10.0}, good),
        _record("alpha_mas_per_task", 1, {"lambda_reg": 10.0}, good),
        _record("alpha_mas_per_task", 0, {"lambda_reg": 1.0}, bad),
        *[_record("alpha_mas", seed, {"lambda_reg": 0.1}, good, totals=[1.0, 2.0],
                  alphas=[1.0, 0.5]) for seed in (0, 1)],
    ], chosen={"mas": 10.0, "alpha_mas_per_task": 10.0, "alpha_mas": 0.1})
    row = folder_summary(folder)
    for label in ("AlphaMAS", "AlphaMAS (per-task)"):
        assert row["series"][label]["final_avg_acc"]["mean"] == 0.0
        assert row["series"][label]["max_forgetting"]["mean"] == 0.0


def test_folders_without_both_methods_are_left_out_and_files_are_written(tmp_path):
    _write(tmp_path / "only_mas", [_record("mas", 0, {}, [[0.9, None], [0.8, 0.9]], totals=[1.0, 2.0])])
    assert alpha_map(tmp_path) == []
    rows = write_alpha_map(tmp_path, tmp_path / "out")
    assert rows == [] and (tmp_path / "out" / "alpha_map.md").is_file()
    assert (tmp_path / "out" / "alpha_map.png").stat().st_size > 0
    assert not (tmp_path / "out" / "per_task.png").exists()  # no folder, no panels


def test_a_grid_running_in_a_folder_does_not_leak_into_the_map(tmp_path):
    """Records and a choice written after the folder's report (a grid resumed there) are not
    read: the map shows the report's runs at the report's choices."""
    folder = tmp_path / "running"
    good, bad = [[0.9, None], [0.8, 0.9]], [[0.9, None], [0.1, 0.9]]
    reported = [_record("mas", s, {"lambda_reg": 1.0}, good) for s in (0, 1)] + [
        _record("alpha_mas", s, {"lambda_reg": 1.0}, good, totals=[1.0, 2.0], alphas=[1.0, 0.5])
        for s in (0, 1)]
    _write(folder, reported)
    before = folder_summary(folder)
    for seed in (2, 3):  # a new seed at the report's choice and a run at a new one
        for params in ({"lambda_reg": 1.0}, {"lambda_reg": 10.0}):
            record = _record("alpha_mas", seed, params, bad, totals=[1.0, 2.0], alphas=[1.0, 0.5])
            (folder / "runs" / f"final__alpha_mas__{seed}_{params['lambda_reg']}.json.gz"
             ).write_bytes(encode_record(record))
    (folder / "selection.json").write_text(json.dumps(_selection({"mas": 1.0, "alpha_mas": 10.0})))
    after = folder_summary(folder)
    assert after == before and after["seeds"] == 2
    assert after["series"]["AlphaMAS"]["final_avg_acc"]["mean"] == 0.0
    _write(folder, [_record("alpha_mas", seed, {"lambda_reg": 1.0}, bad, totals=[1.0, 2.0],
                            alphas=[1.0, 0.5]) for seed in (0, 1)] + reported[:2], start=10)
    worse = folder_summary(folder)["series"]["AlphaMAS"]["final_avg_acc"]  # the new report
    assert worse["mean"] == pytest.approx((0.5 - 0.85) / 1) and worse["n"] == 2


def test_small_alphas_keep_three_significant_digits_in_the_per_task_table(tmp_path):
    """Long streams choose λ ~ 1e-3, so alpha_t ~ 1e-4: the table shows 0.000215, not 0.00."""
    learned = [[0.9, None], [0.8, 0.9]]
    _write(tmp_path / "long", [
        *[_record("mas", seed, {"lambda_reg": 0.01}, learned) for seed in (0, 1)],
        *[_record("alpha_mas_per_task", seed, {"lambda_reg": 0.01}, learned) for seed in (0, 1)],
        *[_record("alpha_mas", seed, {"lambda_reg": 0.001}, learned, totals=[1.0, 2.0],
                  alphas=[2.154e-4, 1.0e-4]) for seed in (0, 1)],
    ], chosen={"mas": 0.01, "alpha_mas_per_task": 0.01, "alpha_mas": 0.001})
    per_task_row = [line for line in markdown(alpha_map(tmp_path)).splitlines()
                    if line.startswith("| long |")][-1]
    assert "| 0.000215 0.0001 |" in per_task_row
