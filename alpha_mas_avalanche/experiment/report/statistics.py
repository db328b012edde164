"""Statistics over seeds: mean, std and 95 % CI; paired t-tests; placement spread and order sensitivity."""
from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


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


def paired_comparisons(runs_df: pd.DataFrame, main_order: str) -> list[dict[str, Any]]:
    """Each AlphaMAS row (every ``alpha_mas*`` method: the lambda sweep, the per-task
    ablation, the importance variants) vs plain MAS on the seeds both ran: paired t-test
    per metric."""
    main = runs_df[runs_df.task_order == main_order]
    baseline = main[main.method == "mas"]
    if baseline.empty:
        return []
    results = []
    for label in sorted(main[main.method.str.startswith("alpha_mas")].label.unique()):
        ours = main[main.label == label].set_index("seed")
        base = baseline.set_index("seed")
        seeds = sorted(set(ours.index) & set(base.index))
        for metric in ("final_avg_acc", "avg_forgetting_ref", "max_forgetting_ref"):
            a = ours.loc[seeds, metric].astype(float).to_numpy()
            b = base.loc[seeds, metric].astype(float).to_numpy()
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            statistic, p_value = paired_t_test(a, b)
            results.append({
                "alpha_mas": label, "baseline": baseline.label.iloc[0], "metric": metric,
                "n_seeds": int(a.size), "mean_difference": float(np.mean(a - b)) if a.size else None,
                "test": "paired t-test (scipy.stats.ttest_rel, two-sided)",
                "t_statistic": statistic, "p_value": p_value,
            })
    return results


def paired_t_test(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    """(t, p) of scipy's two-sided paired t-test; (None, None) for fewer than 2 pairs or
    identical differences (t undefined)."""
    if a.size >= 2 and np.ptp(a - b) > 0:
        test = stats.ttest_rel(a, b)
        return float(test.statistic), float(test.pvalue)
    return None, None


def placement_spread_comparisons(runs_df: pd.DataFrame) -> list[dict[str, Any]]:
    """Each AlphaMAS row run in several placements vs MAS: per seed, the spread (max − min
    over placements) of the moved pair's final accuracy; paired t-test over the seeds both
    ran in every placement."""
    def spreads(rows: pd.DataFrame) -> pd.Series:
        placements = rows.task_order.nunique()
        complete = rows.groupby("seed").filter(lambda g: g.task_order.nunique() == placements)
        return complete.groupby("seed").moved_pair_final_acc.agg(lambda v: v.max() - v.min())

    baseline = runs_df[runs_df.method == "mas"]
    if baseline.task_order.nunique() < 2:
        return []
    base = spreads(baseline)
    results = []
    for label in runs_df[runs_df.method.str.startswith("alpha_mas")].label.unique():
        rows = runs_df[runs_df.label == label]
        if rows.task_order.nunique() < 2:
            continue
        ours = spreads(rows)
        seeds = sorted(set(ours.index) & set(base.index))
        a, b = ours.loc[seeds].to_numpy(float), base.loc[seeds].to_numpy(float)
        statistic, p_value = paired_t_test(a, b)
        results.append({
            "alpha_mas": label, "baseline": baseline.label.iloc[0],
            "metric": "moved_pair_final_acc_spread", "n_seeds": len(seeds),
            "alpha_mas_mean": float(a.mean()) if a.size else None,
            "baseline_mean": float(b.mean()) if b.size else None,
            "mean_difference": float(np.mean(a - b)) if a.size else None,
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
