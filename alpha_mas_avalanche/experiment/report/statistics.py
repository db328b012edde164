"""Statistics over seeds: mean, std and 95 % CI; every method against MAS, paired over seeds;
placement spread and order sensitivity."""
from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alpha_mas_avalanche.experiment.method_registry import baseline_method, trains_once
from alpha_mas_avalanche.experiment.report.significance import compare_paired


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


#: the quantities every method is compared with MAS on, each tested once: its direction
#: (True: higher is better) and the equivalence margin of its TOST (fraction, 0.01 = 1 pp)
COMPARED = {
    "final_avg_acc": (True, 0.01),
    "avg_forgetting_avalanche": (False, 0.01),
    "max_forgetting_avalanche": (False, 0.01),
    "intransigence": (False, 0.01),
}
def compared_labels(runs_df: pd.DataFrame) -> list[str]:
    """The rows compared with the registry's baseline (MAS): every label but its own and
    those of methods trained on all tasks at once (Joint, a bound)."""
    rows = runs_df[[m != baseline_method() and not trains_once(m) for m in runs_df.method]]
    return sorted(rows.label.unique())


def paired_comparisons(runs_df: pd.DataFrame, main_order: str) -> list[dict[str, Any]]:
    """Every compared row (:func:`compared_labels`) minus MAS on the seeds both ran in the
    main task order, per :data:`COMPARED` quantity: paired t-test, TOST, power
    (:func:`~.significance.compare_paired`); Holm's adjustment is left to the page."""
    main = runs_df[runs_df.task_order == main_order]
    baseline = main[main.method == baseline_method()]
    if baseline.empty:
        return []
    base = baseline.set_index("seed")
    results = []
    for label in compared_labels(main):
        ours = main[main.label == label].set_index("seed")
        seeds = sorted(set(ours.index) & set(base.index))
        for metric, (higher_is_better, margin) in COMPARED.items():
            a = ours.loc[seeds, metric].astype(float).to_numpy()
            b = base.loc[seeds, metric].astype(float).to_numpy()
            results.append({"method": str(ours.method.iloc[0]), "label": label,
                            "baseline": baseline.label.iloc[0], "metric": metric,
                            "higher_is_better": higher_is_better,
                            **compare_paired(a, b, margin)})
    return results


def placement_spread_comparisons(runs_df: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row run in several placements vs MAS: per seed, the spread (max − min over
    placements) of the moved pair's final accuracy, paired over the seeds both ran in every
    placement (:func:`~.significance.compare_paired`, margin 1 pp; lower is better)."""
    def spreads(rows: pd.DataFrame) -> pd.Series:
        placements = rows.task_order.nunique()
        complete = rows.groupby("seed").filter(lambda g: g.task_order.nunique() == placements)
        return complete.groupby("seed").moved_pair_final_acc.agg(lambda v: v.max() - v.min())

    baseline = runs_df[runs_df.method == baseline_method()]
    if baseline.task_order.nunique() < 2:
        return []
    base = spreads(baseline)
    results = []
    for label in compared_labels(runs_df):
        rows = runs_df[runs_df.label == label]
        if rows.task_order.nunique() < 2:
            continue
        ours = spreads(rows)
        seeds = sorted(set(ours.index) & set(base.index))
        a, b = ours.loc[seeds].to_numpy(float), base.loc[seeds].to_numpy(float)
        results.append({
            "method": str(rows.method.iloc[0]), "label": label, "baseline": baseline.label.iloc[0],
            "metric": "moved_pair_final_acc_spread", "higher_is_better": False,
            "label_mean": float(a.mean()) if a.size else None,
            "baseline_mean": float(b.mean()) if b.size else None,
            **compare_paired(a, b, 0.01),
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
