"""What the figures draw, aggregated over seeds: accuracy matrices, held-out curves, importance totals."""
from __future__ import annotations

from typing import Any

import numpy as np

from alpha_mas_avalanche.experiment.methods import baseline_method, family_of
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci


def accuracy_matrices(runs: list[dict], main_order: list[int], labels: list[str]) -> dict[str, Any]:
    """Per label (main order): ``mean``/``std``/``ci95`` of each accuracy-matrix cell over
    seeds (row: after experience i, column: task position j), ``n`` seeds. Joint's single
    evaluation is its last row."""
    out: dict[str, Any] = {}
    for label in labels:
        matrices = [r["acc_matrix"] for r in runs if r["label"] == label and r["task_order"] == main_order]
        if not matrices:
            continue
        size = len(matrices[0][0])
        padded = [[[None] * size] * (size - len(m)) + m for m in matrices]
        cells = [[mean_std_ci([m[i][j] for m in padded]) for j in range(size)] for i in range(size)]
        out[label] = {key: [[c[key] for c in row] for row in cells] for key in ("mean", "std", "ci95")}
        out[label]["n"] = len(matrices)
    return out


def _curve(series: list[list[float]]) -> dict[str, Any]:
    length = min(map(len, series))
    stats_ = [mean_std_ci([s[k] for s in series]) for k in range(length)]
    return {key: [s[key] for s in stats_] for key in ("mean", "std", "ci95")} | {"n": len(series)}


def heldout_curves(runs: list[dict], main_order: list[int], labels: list[str]) -> dict[str, Any]:
    """Per label (main order): mean accuracy over the tasks seen so far, after each epoch on
    the validation splits (``kind="validation"``); for records made before that was
    measured, after each experience on the test stream (``kind="test"``)."""
    out: dict[str, Any] = {}
    for label in labels:
        chosen = [r for r in runs if r["label"] == label and r["task_order"] == main_order]
        if not chosen:
            continue
        if all(r.get("heldout_per_epoch") for r in chosen):
            series = [[float(np.mean(p["acc"])) for p in r["heldout_per_epoch"]] for r in chosen]
            curve = _curve(series)
            curve.update(kind="validation",
                         experience=[p["experience"] for p in chosen[0]["heldout_per_epoch"]][:len(curve["mean"])])
        else:
            series = [[float(np.mean([a for a in row if a is not None])) for row in r["acc_matrix"]]
                      for r in chosen]
            curve = _curve(series)
            curve.update(kind="test", experience=list(range(len(curve["mean"]))))
        out[label] = curve
    return out


def importance_totals(runs: list[dict], main_order: list[int], labels: list[str]) -> dict[str, Any]:
    """Per AlphaMAS/MAS label (main order): each task's importance total S_t (by training
    position, after the last task; mean over seeds) and max/min S_t per seed (its median and
    range: a ratio with one tiny S_t is heavy-tailed): how unequal the tasks' importances
    are, i.e. what alpha-scaling evens out."""
    out: dict[str, Any] = {}
    for label in labels:
        totals = [r["importance_totals_per_experience"][-1] for r in runs
                  if r["label"] == label and r["task_order"] == main_order
                  and (family_of(r["method"]) == "alpha_mas" or r["method"] == baseline_method()) and r.get("importance_totals_per_experience")]
        totals = [t for t in totals if t and all(v is not None and v > 0 for v in t)]
        if not totals:
            continue
        out[label] = {
            "per_position": [float(np.mean([t[k] for t in totals])) for k in range(len(totals[0]))],
            "max_over_min": [max(t) / min(t) for t in totals],
            "n": len(totals),
        }
    return out
