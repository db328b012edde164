"""Where alpha-scaling can act: per results folder, the spread of the importance totals S_t
against AlphaMAS − MAS (paired over seeds), and the mechanism's correlations over tasks.

Alpha-scaling equalises ``alpha_t * S_t``, so it can only matter where the S_t differ. For
every folder whose report (``summary.json``, ``runs.csv``) holds final runs of MAS and
AlphaMAS, each at the strength chosen on its validation stream, in the folder's main task
order (the report's choices and runs only, so a grid still running in a folder cannot leak
into the map):

- ``spread``: max/min of a run's S_t, median over AlphaMAS's seeds;
- AlphaMAS − MAS and the per-task ablation − MAS, paired over seeds, for the final average
  accuracy and the maximum forgetting (accuracy right after training a task minus its final
  accuracy, the largest over the tasks), with 95 % t-intervals, the paired t-test's p and its
  Holm adjustment within the map's family (every cell of the table);
- Spearman correlations over (task, seed) of AlphaMAS's runs: S_t against the task's accuracy
  right after training it, and alpha_t (after the last task) against the task's forgetting
  (the last task, whose forgetting is 0 by construction, left out).

``compare-baselines --results-index`` writes ``results/alpha_map/`` (page and figures:
:mod:`~alpha_mas_avalanche.experiment.spread_figure`). No Avalanche.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from alpha_mas_avalanche.experiment.methods import REGISTRY, baseline_method, family_of, with_role
from alpha_mas_avalanche.experiment.records import decode_record, record_paths, run_id_of
from alpha_mas_avalanche.experiment.report.significance import adjust_family, compare_paired
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci

#: (series label, method) compared with MAS, each at its strength chosen on validation: the
#: registry's deciding methods of the AlphaMAS family
SERIES = tuple((REGISTRY[m].label, m) for m in with_role("deciding") if family_of(m) == "alpha_mas")
#: the map's family of tests
FAMILY = ("AlphaMAS and the per-task ablation minus MAS, each tuned on validation, on final "
          "accuracy and maximum forgetting, in every results folder of the map")
METRICS = {"final_avg_acc": "final average accuracy", "max_forgetting": "maximum forgetting"}


def task_forgetting(acc_matrix: list[list[float | None]]) -> list[float]:
    """Accuracy right after training each task minus its final accuracy, every task but the last."""
    last = acc_matrix[-1]
    return [acc_matrix[t][t] - last[t] for t in range(len(acc_matrix) - 1)]


def learned_accuracy(acc_matrix: list[list[float | None]]) -> list[float]:
    """Accuracy of each task right after training it (the matrix's diagonal)."""
    return [row[t] for t, row in enumerate(acc_matrix)]


def _main_order(folder: Path) -> list[int] | None:
    config = folder / "config.yaml"
    if not config.is_file():
        return None
    orders = (yaml.safe_load(config.read_text()) or {}).get("task_orders")
    return list(orders[0]) if orders else None


def _matches(record: dict, method: str, params: dict[str, Any]) -> bool:
    return record["method"] == method and all(
        float(record["params"].get(k, np.nan)) == v for k, v in params.items())


def reported_run_ids(folder: Path) -> set[str]:
    """The run ids of ``folder``'s report (its ``runs.csv``; empty where it has none)."""
    table = folder / "runs.csv"
    return set(pd.read_csv(table, usecols=["run_id"]).run_id) if table.is_file() else set()


def reported_final_records(folder: Path) -> list[dict]:
    """The final-run records of ``folder`` that its report (``runs.csv``) holds."""
    reported = reported_run_ids(folder)
    return [decode_record(path) for path in record_paths(folder / "runs", "final__")
            if run_id_of(path) in reported]


def folder_runs(folder: Path) -> pd.DataFrame:
    """One row per final sequential run of ``folder``'s main task order that its report holds."""
    order = _main_order(folder)
    rows = []
    for record in reported_final_records(folder):
        if record.get("task_order") != order or len(record.get("acc_matrix", [])) < 2:
            continue
        totals = (record.get("importance_totals_per_experience") or [[]])[-1]
        forgetting = task_forgetting(record["acc_matrix"])
        rows.append({
            "record": record, "method": record["method"], "seed": record["seed"],
            "final_avg_acc": record["final_avg_acc"], "max_forgetting": max(forgetting),
            "spread": max(totals) / min(totals) if totals and min(totals) > 0 else None,
            "benchmark": record["benchmark_name"],
        })
    return pd.DataFrame(rows)


def paired(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """Mean of ``a - b`` over the seeds both hold, its 95 % t-interval and the report's
    paired comparison (:func:`~.report.significance.compare_paired`, margin 1 pp)."""
    joined = a.set_index("seed")[metric].to_frame("a").join(
        b.set_index("seed")[metric].to_frame("b"), how="inner").dropna()
    if len(joined) < 2:
        return None
    first, second = joined.a.to_numpy(dtype=float), joined.b.to_numpy(dtype=float)
    stat = mean_std_ci(first - second)
    return {"mean": stat["mean"], "ci95": stat["ci95"], "n": stat["n"],
            "higher_is_better": metric == "final_avg_acc", **compare_paired(first, second, 0.01)}


def _correlation(x: list[float], y: list[float]) -> dict[str, Any] | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    result = stats.spearmanr(x, y)
    return {"rho": float(result.statistic), "p": float(result.pvalue), "n": len(x)}


def mechanism(runs: pd.DataFrame) -> dict[str, Any]:
    """Spearman over (task, seed) of the AlphaMAS λ=N runs: S_t vs accuracy right after
    training task t, and alpha_t vs the forgetting of task t."""
    totals, learned, alphas, forgotten = [], [], [], []
    for record in runs.record:
        last_totals = record["importance_totals_per_experience"][-1]
        last_alphas = record["alphas_per_experience"][-1]
        matrix = record["acc_matrix"]
        totals += last_totals
        learned += learned_accuracy(matrix)[:len(last_totals)]
        alphas += last_alphas[:-1]
        forgotten += task_forgetting(matrix)
    return {"s_vs_learned": _correlation(totals, learned),
            "alpha_vs_forgetting": _correlation(alphas, forgotten)}


def chosen_params(folder: Path, method: str) -> dict[str, float] | None:
    """``method``'s strength chosen on validation, from the report's ``summary.json`` (None
    where it was not chosen): its final runs, and no run left from an earlier choice."""
    path = folder / "summary.json"
    selection = (json.loads(path.read_text()).get("selection") or {}) if path.is_file() else {}
    chosen = (selection.get(method) or {}).get("chosen")
    return None if chosen is None else {k: float(v) for k, v in chosen.items()}


def per_task_profile(runs: pd.DataFrame) -> dict[str, list[float]]:
    """Per task position, the median over AlphaMAS's seeds of S_t / max S_t, alpha_t (both
    after the last task), the accuracy right after training the task and its forgetting."""
    def median(lists: list[list[float]]) -> list[float]:
        return [float(np.median(column)) for column in zip(*lists)]

    records = list(runs.record)
    totals = [r["importance_totals_per_experience"][-1] for r in records]
    return {"relative_totals": median([[t / max(ts) for t in ts] for ts in totals]),
            "alphas": median([r["alphas_per_experience"][-1] for r in records]),
            "learned": median([learned_accuracy(r["acc_matrix"]) for r in records]),
            "forgetting": median([task_forgetting(r["acc_matrix"]) for r in records])}


def folder_summary(folder: Path) -> dict[str, Any] | None:
    """The folder's row of the map, or None where it lacks tuned MAS or AlphaMAS final runs."""
    runs = folder_runs(folder)
    baseline, first = baseline_method(), SERIES[0][1]
    chosen = {method: chosen_params(folder, method) for method in (baseline, *dict(SERIES).values())}
    if runs.empty or None in (chosen[baseline], chosen[first]):
        return None
    mas = runs[[_matches(r, baseline, chosen[baseline]) for r in runs.record]]
    main = runs[[_matches(r, first, chosen[first]) for r in runs.record]]
    if mas.empty or main.empty or main.spread.isna().all():
        return None
    out = {"folder": folder.name, "benchmark": main.benchmark.iloc[0],
           "spread_median": float(main.spread.median()), "seeds": int(main.seed.nunique()),
           "series": {}, "mechanism": mechanism(main), "per_task": per_task_profile(main)}
    for label, method in SERIES:
        rows = (runs[[_matches(r, method, chosen[method]) for r in runs.record]]
                if chosen[method] is not None else runs.iloc[:0])
        out["series"][label] = {m: paired(rows, mas, m) for m in METRICS} if not rows.empty else None
    return out


def alpha_map(results: Path) -> list[dict[str, Any]]:
    """The map's rows, one per results folder that has them, by increasing spread; every
    paired cell Holm-adjusted within :data:`FAMILY`."""
    rows = [folder_summary(f) for f in sorted(results.iterdir()) if (f / "runs.csv").is_file()]
    rows = sorted((r for r in rows if r is not None), key=lambda r: r["spread_median"])
    cells = [(row["series"][label], metric) for row in rows for label, _ in SERIES
             for metric in METRICS if (row["series"][label] or {}).get(metric)]
    for (series, metric), adjusted in zip(cells, adjust_family([s[m] for s, m in cells], FAMILY)):
        series[metric] = adjusted
    return rows


def _cell(stat: dict[str, Any] | None) -> str:
    if stat is None:
        return "–"
    p = "" if stat["p_value"] is None else (f", p {stat['p_value']:.2g}, Holm p "
                                            f"{stat['p_holm']:.2g}, {stat['verdict']}")
    return f"{100 * stat['mean']:+.2f} ± {100 * stat['ci95']:.2f}{p}"


def _rho(stat: dict[str, Any] | None) -> str:
    return "–" if stat is None else f"{stat['rho']:+.2f} (p {stat['p']:.2g}, n {stat['n']})"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The map as a markdown table."""
    lines = ["| Results folder | Benchmark | S_t max/min (median) | seeds | "
             + " | ".join(f"{s} − MAS, {m} (pp)" for s, _ in SERIES for m in METRICS.values())
             + " | ρ(S_t, acc after training) | ρ(alpha_t, forgetting) |",
             "|---|---|---:|---:|" + "---|" * (len(SERIES) * len(METRICS)) + "---|---|"]
    for row in rows:
        cells = [_cell((row["series"][s] or {}).get(m)) for s, _ in SERIES for m in METRICS]
        lines.append(f"| {row['folder']} | {row['benchmark']} | {row['spread_median']:.1f} | "
                     f"{row['seeds']} | " + " | ".join(cells) + f" | "
                     f"{_rho(row['mechanism']['s_vs_learned'])} | "
                     f"{_rho(row['mechanism']['alpha_vs_forgetting'])} |")
    lines += ["", "Every method at the strength chosen on its validation stream. Paired over "
              "seeds: mean ± 95 % t-interval half-width, two-sided paired t-test p, its Holm "
              f"adjustment within the family of this table ({FAMILY}; "
              f"{sum(1 for row in rows for s, _ in SERIES for m in METRICS if (row['series'][s] or {}).get(m))} "
              "tests) and the verdict (better, worse, equivalent by TOST at ±1 pp, or "
              "inconclusive); maximum forgetting from each run's accuracy matrix (accuracy right "
              "after training a task minus its final accuracy); ρ: Spearman over (task, seed) "
              "of the AlphaMAS runs. Written by `compare-baselines --results-index`.",
              "", "## Per task, AlphaMAS after the last task (median over seeds)", "",
              "S_t / max S_t, alpha_t, accuracy right after training the task (%) and its "
              "forgetting (pp), tasks in training order.", "",
              "| Results folder | S_t / max S_t | alpha_t | accuracy after training (%) | forgetting (pp) |",
              "|---|---|---|---|---|"]
    for row in rows:
        profile = row["per_task"]
        lines.append(f"| {row['folder']} | " + " | ".join(
            " ".join(fmt.format(scale * v) for v in profile[key]) for key, fmt, scale in (
                ("relative_totals", "{:.2f}", 1), ("alphas", "{:.3g}", 1),
                ("learned", "{:.1f}", 100), ("forgetting", "{:.1f}", 100))) + " |")
    return "\n".join(lines) + "\n"
