"""Per-run and per-task data frames of a comparison, and the per-label summary over seeds."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from alpha_mas_avalanche.data.names import MOVED_PAIR
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci


METRICS = {
    "final_avg_acc": "Final avg acc (%)",
    "learning_acc": "Learning acc (%)",
    "avg_forgetting_avalanche": "Avg forgetting (%)",
    "max_forgetting_avalanche": "Max forgetting (%)",
    "intransigence": "Intransigence (%)",
    "avg_forgetting_ref": "Avg forgetting, ref. (%)",
    "max_forgetting_ref": "Max forgetting, ref. (%)",
    "train_time_s": "Train time (s)",
}


PERCENT = {k for k in METRICS if k != "train_time_s"}


def reference_forgetting(run: dict, single_acc: dict[int, float]) -> dict[int, float | None]:
    """Per pair: single-task accuracy minus the final accuracy (None if no single-task run)."""
    out: dict[int, float | None] = {}
    for pair, acc in run["final_acc_by_pair"].items():
        reference = single_acc.get(int(pair))
        out[int(pair)] = None if reference is None or acc is None else reference - acc
    return out


def learning_accuracies(run: dict) -> list[float | None]:
    """Per training position: the task's accuracy right after training it (the accuracy
    matrix's diagonal; Riemer et al. 2019 average it as learning accuracy)."""
    matrix = run["acc_matrix"]
    return [matrix[i][i] if i < len(matrix) and i < len(matrix[i]) else None
            for i in range(len(run["final_acc"]))]


def intransigence(run: dict, single_acc: dict[int, float]) -> float | None:
    """Chaudhry et al. (2018): single-task accuracy minus the accuracy right after training,
    averaged over the tasks (None without every single-task run)."""
    learned = learning_accuracies(run)
    gaps = [single_acc.get(pair) - acc if single_acc.get(pair) is not None and acc is not None
            else None for pair, acc in zip(run["task_order"], learned)]
    return None if None in gaps or not gaps else float(np.mean(gaps))


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or None in values else float(np.mean(values))


def runs_table(runs: list[dict], singles: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run (headline metrics) and one row per (run, pair)."""
    single = {(s["seed"], s["pair"]): s["acc"] for s in singles}
    rows, per_task = [], []
    for run in runs:
        seed = run["seed"]
        n_tasks = len(run["final_acc"])
        seed_single = {p: single[(seed, p)] for p in range(n_tasks) if (seed, p) in single}
        forgetting = reference_forgetting(run, seed_single)
        ref_values = [v for v in forgetting.values() if v is not None]
        aval = [v for v in run["avalanche_forgetting_by_exp"] if v is not None]
        order = run["task_order"]
        rows.append({
            "label": run["label"], "method": run["method"],
            "params": json.dumps(run["params"], sort_keys=True), "seed": seed,
            "task_order": "".join(map(str, order)), "moved_pair_position": order.index(MOVED_PAIR) + 1,
            "final_avg_acc": run["final_avg_acc"],
            "learning_acc": _mean_or_none(learning_accuracies(run)),
            "intransigence": intransigence(run, seed_single),
            "avg_forgetting_ref": float(np.mean(ref_values)) if len(ref_values) == n_tasks else None,
            "max_forgetting_ref": float(np.max(ref_values)) if len(ref_values) == n_tasks else None,
            "avg_forgetting_avalanche": run["avalanche_forgetting"],
            "max_forgetting_avalanche": float(np.max(aval)) if aval else None,
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
            for pair in sorted(int(p) for p in tasks[tasks.label == label].pair.unique())
        }
        out[label] = entry
    return out
