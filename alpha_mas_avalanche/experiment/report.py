"""Tables and statistics of a comparison: JSON, CSV and a paper-like markdown table
(the figures are drawn by :mod:`.figures`).

Definitions (accuracies in [0, 1]; tables print percent):
- reference forgetting of a task (the reference paper): accuracy of a model trained on
  that task alone (same model, epochs, seed) minus the task's accuracy after all tasks;
  per task, average and maximum over the tasks.
- Avalanche forgetting / BWT: Avalanche's ``StreamForgetting`` / ``StreamBWT`` (accuracy
  right after learning a task minus after all tasks, averaged over earlier tasks), and the
  maximum of ``ExperienceForgetting``.
- over seeds: mean, sample std (ddof=1) and the 95 % confidence half-width of the mean
  from Student's t distribution (n-1 degrees of freedom); none when n < 2.
- AlphaMAS vs MAS: paired t-test (``scipy.stats.ttest_rel``, two-sided) on the seeds both
  ran, in the main task order.
- order sensitivity: for the moved pair (pair 0, the reference's task (1,2)), its final
  accuracy and reference forgetting per placement (mean over seeds), their spread
  (max - min over placements) and std over placements (ddof=1).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alpha_mas_avalanche.data import MOVED_PAIR, N_TASKS
from alpha_mas_avalanche.experiment.figures import write_figures
from alpha_mas_avalanche.experiment.store import sanitize, write_json_atomic

METRICS = {
    "final_avg_acc": "Final avg acc (%)",
    "avg_forgetting_ref": "Avg forgetting, ref. (%)",
    "max_forgetting_ref": "Max forgetting, ref. (%)",
    "avg_forgetting_avalanche": "Avg forgetting, Avalanche (%)",
    "max_forgetting_avalanche": "Max forgetting, Avalanche (%)",
    "bwt": "BWT (%)",
    "train_time_s": "Train time (s)",
}
PERCENT = {k for k in METRICS if k != "train_time_s"}


def mean_std_ci(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "ci95", "n"}`` of the finite values (std/ci None when n < 2)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(data.size)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    if n == 1:
        return {"mean": float(data[0]), "std": None, "ci95": None, "n": 1}
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": float(data.mean()), "std": std, "ci95": half, "n": n}


def reference_forgetting(run: dict, single_acc: dict[int, float]) -> dict[int, float | None]:
    """Per pair: single-task accuracy minus the final accuracy (None if no single-task run)."""
    out: dict[int, float | None] = {}
    for pair, acc in run["final_acc_by_pair"].items():
        reference = single_acc.get(int(pair))
        out[int(pair)] = None if reference is None or acc is None else reference - acc
    return out


def runs_table(runs: list[dict], singles: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run (headline metrics) and one row per (run, pair)."""
    single = {(s["seed"], s["pair"]): s["acc"] for s in singles}
    rows, per_task = [], []
    for run in runs:
        seed = run["seed"]
        forgetting = reference_forgetting(
            run, {p: single[(seed, p)] for p in range(N_TASKS) if (seed, p) in single})
        ref_values = [v for v in forgetting.values() if v is not None]
        aval = [v for v in run["avalanche_forgetting_by_exp"] if v is not None]
        order = run["task_order"]
        rows.append({
            "label": run["label"], "method": run["method"],
            "params": json.dumps(run["params"], sort_keys=True), "seed": seed,
            "task_order": "".join(map(str, order)), "moved_pair_position": order.index(MOVED_PAIR) + 1,
            "final_avg_acc": run["final_avg_acc"],
            "avg_forgetting_ref": float(np.mean(ref_values)) if len(ref_values) == N_TASKS else None,
            "max_forgetting_ref": float(np.max(ref_values)) if len(ref_values) == N_TASKS else None,
            "avg_forgetting_avalanche": run["avalanche_forgetting"],
            "max_forgetting_avalanche": float(np.max(aval)) if aval else None,
            "bwt": run["avalanche_bwt"],
            "train_time_s": run["train_time_s"],
            "moved_pair_final_acc": run["final_acc_by_pair"][str(MOVED_PAIR)],
            "moved_pair_forgetting_ref": forgetting[MOVED_PAIR],
            "run_id": run["run_id"],
        })
        for position, pair in enumerate(order):
            per_task.append({
                "label": run["label"], "seed": seed, "task_order": "".join(map(str, order)),
                "pair": pair, "classes": "-".join(map(str, run["task_classes"][position])),
                "position": position + 1, "single_task_acc": single.get((seed, pair)),
                "final_acc": run["final_acc"][position], "forgetting_ref": forgetting[pair],
                "forgetting_avalanche": run["avalanche_forgetting_by_exp"][position],
            })
    return pd.DataFrame(rows), pd.DataFrame(per_task)


def summarize(runs_df: pd.DataFrame, per_task_df: pd.DataFrame, main_order: str,
              labels: list[str]) -> dict[str, Any]:
    """Per label (main order): every metric's mean/std/ci; reference forgetting per pair."""
    main = runs_df[runs_df.task_order == main_order]
    tasks = per_task_df[per_task_df.task_order == main_order]
    out: dict[str, Any] = {}
    for label in labels:
        rows = main[main.label == label]
        if rows.empty:
            continue
        entry = {metric: mean_std_ci(rows[metric].tolist()) for metric in METRICS}
        entry["seeds"] = sorted(int(s) for s in rows.seed)
        entry["forgetting_ref_per_pair"] = {
            str(pair): mean_std_ci(tasks[(tasks.label == label) & (tasks.pair == pair)]
                                   .forgetting_ref.tolist())
            for pair in range(N_TASKS)
        }
        out[label] = entry
    return out


def paired_comparisons(runs_df: pd.DataFrame, main_order: str) -> list[dict[str, Any]]:
    """Each AlphaMAS row vs plain MAS on the seeds both ran: paired t-test per metric."""
    main = runs_df[runs_df.task_order == main_order]
    baseline = main[main.method == "mas"]
    if baseline.empty:
        return []
    results = []
    for label in sorted(main[main.method == "alpha_mas"].label.unique()):
        ours = main[main.label == label].set_index("seed")
        base = baseline.set_index("seed")
        seeds = sorted(set(ours.index) & set(base.index))
        for metric in ("final_avg_acc", "avg_forgetting_ref", "max_forgetting_ref"):
            a = ours.loc[seeds, metric].astype(float).to_numpy()
            b = base.loc[seeds, metric].astype(float).to_numpy()
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            statistic = p_value = None
            if a.size >= 2 and np.ptp(a - b) > 0:
                test = stats.ttest_rel(a, b)
                statistic, p_value = float(test.statistic), float(test.pvalue)
            results.append({
                "alpha_mas": label, "baseline": baseline.label.iloc[0], "metric": metric,
                "n_seeds": int(a.size), "mean_difference": float(np.mean(a - b)) if a.size else None,
                "test": "paired t-test (scipy.stats.ttest_rel, two-sided)",
                "t_statistic": statistic, "p_value": p_value,
            })
    return results


def order_sensitivity(runs_df: pd.DataFrame) -> dict[str, Any]:
    """Per label run in several orders: the moved pair per placement, spread and std."""
    out = {}
    for label, rows in runs_df.groupby("label"):
        if rows.task_order.nunique() < 2:
            continue
        per_placement = {}
        for position, group in rows.groupby("moved_pair_position"):
            per_placement[str(int(position))] = {
                "final_acc": mean_std_ci(group.moved_pair_final_acc.tolist()),
                "forgetting_ref": mean_std_ci(group.moved_pair_forgetting_ref.tolist()),
            }
        entry: dict[str, Any] = {"per_placement": per_placement}
        for metric in ("final_acc", "forgetting_ref"):
            means = [v[metric]["mean"] for v in per_placement.values() if v[metric]["mean"] is not None]
            entry[f"{metric}_spread"] = float(max(means) - min(means)) if means else None
            entry[f"{metric}_std"] = float(np.std(means, ddof=1)) if len(means) >= 2 else None
        out[label] = entry
    return out


def epoch_curves(runs: list[dict], main_order: list[int], labels: list[str]) -> dict[str, list]:
    """Per label: mean training accuracy per epoch over seeds (main order)."""
    curves: dict[str, list] = {}
    for label in labels:
        series = [[p["train_acc"] for p in r["epochs"]] for r in runs
                  if r["label"] == label and r["task_order"] == main_order and r["epochs"]]
        if series:
            length = min(map(len, series))
            curves[label] = [float(np.mean([s[i] for s in series])) for i in range(length)]
    return curves


# ------------------------------------------------------------------ writing
def _cell(stat: dict[str, Any], percent: bool) -> str:
    if stat["mean"] is None:
        return "n/a"
    scale = 100.0 if percent else 1.0
    text = f"{stat['mean'] * scale:.2f}"
    if stat["ci95"] is not None:
        text += f" ± {stat['ci95'] * scale:.2f}"
    return text


def markdown_table(summary: dict[str, Any], title: str) -> str:
    header = ["Method"] + list(METRICS.values()) + ["n"]
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for label, entry in summary.items():
        cells = [_cell(entry[m], m in PERCENT) for m in METRICS]
        lines.append("| " + " | ".join([label] + cells + [str(entry["final_avg_acc"]["n"])]) + " |")
    lines += ["", "Mean ± 95 % CI half-width over seeds (Student t); 'ref.' = the reference "
                  "paper's forgetting (single-task accuracy minus final accuracy); Avalanche "
                  "forgetting/BWT from its metrics; train time excludes evaluation."]
    return "\n".join(lines) + "\n"


def write_report(output_dir: str | Path, runs: list[dict], singles: list[dict], *,
                 config, selection: dict | None = None) -> dict[str, Any]:
    """Write summary.json, runs.csv, per_task.csv, summary.csv, table.md and figures/."""
    output_dir = Path(output_dir)
    labels = list(dict.fromkeys(r["label"] for r in runs))
    main_order = config.task_orders[0]
    main_key = "".join(map(str, main_order))
    runs_df, per_task_df = runs_table(runs, singles)
    summary = summarize(runs_df, per_task_df, main_key, labels)
    title = (f"{runs[0]['benchmark_name'] if runs else config.benchmark}, "
             f"{config.scenario}-incremental, {len(config.seeds)} seed(s), "
             f"{config.epochs} epoch(s) per task, task order {main_key}")
    result = {
        "benchmark": runs[0]["benchmark_name"] if runs else config.benchmark,
        "title": title,
        "main_task_order": main_order,
        "methods": summary,
        "paired_comparisons": paired_comparisons(runs_df, main_key),
        "order_sensitivity": order_sensitivity(runs_df),
        "epoch_curves": epoch_curves(runs, main_order, labels),
        "selection": selection or {},
        "n_runs": len(runs),
    }
    write_json_atomic(output_dir / "summary.json", result)
    runs_df.to_csv(output_dir / "runs.csv", index=False, na_rep="")
    per_task_df.to_csv(output_dir / "per_task.csv", index=False, na_rep="")
    flat = [{"label": label, "metric": metric, **entry[metric]}
            for label, entry in summary.items() for metric in METRICS]
    pd.DataFrame(flat).to_csv(output_dir / "summary.csv", index=False, na_rep="")
    (output_dir / "table.md").write_text(markdown_table(summary, title))
    result["figures"] = [str(p) for p in write_figures(output_dir / "figures", result)]
    write_json_atomic(output_dir / "summary.json", sanitize(result))
    return result
