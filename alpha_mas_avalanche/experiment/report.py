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
  from Student's t distribution (n-1 degrees of freedom); none when n < 2. Tables and
  figures show the CI for n >= 3 seeds and the std for n = 2 (a t interval with one degree
  of freedom is 12.7 std wide).
- AlphaMAS vs MAS: paired t-test (``scipy.stats.ttest_rel``, two-sided) on the seeds both
  ran, in the main task order.
- order sensitivity: for the moved pair (pair 0, the reference's task (1,2)), its final
  accuracy and reference forgetting per placement (mean over seeds), their spread
  (max - min over placements) and std over placements (ddof=1); and per seed the spread of
  its final accuracy, AlphaMAS vs MAS by paired t-test.
- seed claims: per AlphaMAS row, "lower average and maximum forgetting than MAS" and "less
  spread over placements": confirmed (every difference negative at p < 0.05),
  contradicted (one positive at p < 0.05) or not confirmed.
- importance totals: S_t = sum of a task's MAS importances, per task (training position)
  from the AlphaMAS/MAS records, and max/min S_t per run.
- rows: the AlphaMAS rows, the baselines, then the bounds (Naive, Joint); each label says
  which hyperparameter it ran with (chosen on validation, default, inherited).
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

from alpha_mas_avalanche.data.names import CIFAR10_CLASS_NAMES, MOVED_PAIR, N_TASKS, pair_classes
from alpha_mas_avalanche.experiment.figures import ALPHA_FAMILY, BOUNDS, write_figures
from alpha_mas_avalanche.experiment.methods import REGISTRY
from alpha_mas_avalanche.experiment.published import hsu2018_comparison
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
#: how a hyperparameter is written in a row label
SYMBOLS = {"lambda_reg": "λ", "ewc_lambda": "λ", "si_lambda": "λ", "alpha": "α"}


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
            statistic, p_value = _paired_test(a, b)
            results.append({
                "alpha_mas": label, "baseline": baseline.label.iloc[0], "metric": metric,
                "n_seeds": int(a.size), "mean_difference": float(np.mean(a - b)) if a.size else None,
                "test": "paired t-test (scipy.stats.ttest_rel, two-sided)",
                "t_statistic": statistic, "p_value": p_value,
            })
    return results


def _paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
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
        statistic, p_value = _paired_test(a, b)
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


#: significance level of the seed claims' verdicts
CLAIM_ALPHA = 0.05


def _verdict(comparisons: list[dict]) -> str:
    """"confirmed" when every difference is negative (AlphaMAS lower) at p < CLAIM_ALPHA,
    "contradicted" when any is positive at p < CLAIM_ALPHA, else "not confirmed"."""
    def significant(c: dict) -> bool:
        return c["p_value"] is not None and c["p_value"] < CLAIM_ALPHA

    if any(significant(c) and c["mean_difference"] > 0 for c in comparisons):
        return "contradicted"
    if comparisons and all(significant(c) and c["mean_difference"] < 0 for c in comparisons):
        return "confirmed"
    return "not confirmed"


def _by_label(comparisons: list[dict]) -> dict[str, dict[str, dict]]:
    """``{AlphaMAS label: {metric: comparison}}``."""
    out: dict[str, dict[str, dict]] = {}
    for c in comparisons:
        out.setdefault(c["alpha_mas"], {})[c["metric"]] = c
    return out


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _p_text(c: dict) -> str:
    return "n/a" if c["p_value"] is None else f"{c['p_value']:.3f}"


def _difference(c: dict) -> str:
    return f"{100 * c['mean_difference']:+.2f} pp, p = {_p_text(c)}"


def seed_claims(paired: list[dict], spread: list[dict], labels: list[str]) -> list[str]:
    """One sentence per AlphaMAS row (in ``labels``' order) and claim: (1) lower average and
    maximum forgetting than MAS; (2) less spread over placements; confirmed / not confirmed /
    contradicted."""
    sentences = []
    by_label = _by_label(paired)
    for label in [lb for lb in labels if lb in by_label]:
        metrics = by_label[label]
        pair = [metrics[m] for m in ("avg_forgetting_ref", "max_forgetting_ref")
                if m in metrics and metrics[m]["mean_difference"] is not None]
        if len(pair) < 2:
            continue
        sentences.append(
            f"{label} has lower average and maximum forgetting than {pair[0]['baseline']}: "
            f"**{_verdict(pair)}** (average {_difference(pair[0])}; maximum "
            f"{_difference(pair[1])}; {_seeds(pair[0]['n_seeds'])}).")
    rank = {lb: i for i, lb in enumerate(labels)}
    for c in sorted(spread, key=lambda c: rank.get(c["alpha_mas"], len(rank))):
        if c["mean_difference"] is None:
            continue
        sentences.append(
            f"{c['alpha_mas']} has less spread over placements than {c['baseline']}: "
            f"**{_verdict([c])}** (the moved task's final-accuracy spread "
            f"{100 * c['alpha_mas_mean']:.2f} against {100 * c['baseline_mean']:.2f} pp, "
            f"difference {_difference(c)}; {_seeds(c['n_seeds'])}).")
    return sentences


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


def table_order(runs: list[dict]) -> list[str]:
    """Labels in table order: the AlphaMAS rows, the other methods, then the bounds (Naive,
    Joint); run order within each group."""
    method = {r["label"]: r["method"] for r in runs}
    labels = list(dict.fromkeys(r["label"] for r in runs))
    group = {lb: 0 if method[lb] in ALPHA_FAMILY else 2 if method[lb] in BOUNDS else 1 for lb in labels}
    return sorted(labels, key=lambda lb: group[lb])


def task_name(benchmark: str, pair: int) -> str:
    """A task named by its classes: ``(1,2)`` for MNIST/digits, ``bird/automobile`` for CIFAR-10."""
    first, second = pair_classes(benchmark, pair)
    if benchmark.startswith("split_cifar10"):
        return f"{CIFAR10_CLASS_NAMES[first]}/{CIFAR10_CLASS_NAMES[second]}"
    return f"({first},{second})"


def _short(value: Any) -> str:
    """``1e4`` rather than ``10000.0``; ``0.1``, ``1``, ``2.5`` as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}"


def _assignments(params: dict[str, Any]) -> str:
    return ", ".join(f"{SYMBOLS.get(k, k)}={_short(v)}" for k, v in params.items())


def display_label(label: str, method: str, params: dict[str, Any], selection: dict | None) -> str:
    """The row label with the hyperparameter behind it: ``EWC (λ=1e4 chosen)``,
    ``EWC (λ=1e7 chosen, at grid edge)``, ``SI (λ=1 used; no effect: ...)``, ``MAS (λ=1,
    default)`` when a grid exists but was not run (``fixed`` when the config set a value
    other than the registry's); AlphaMAS rows name their λ already."""
    entry = REGISTRY.get(method)
    if selection is not None:
        used = _assignments(selection["chosen"])
        if selection.get("no_effect", False):
            return _annotate(label, f"{used} used; no effect: every grid value gave the same "
                                    "validation score")
        edge = ", at grid edge" if selection.get("at_grid_edge", False) else ""
        return _annotate(label, f"{used} chosen{edge}")
    if entry is None:
        return label
    keys = list(entry.select) or list(entry.inherit)
    values = {k: params.get(k, entry.defaults.get(k)) for k in keys if k in params or k in entry.defaults}
    if not values:
        return label
    how = ("inherited" if entry.inherit and not entry.select else
           "default" if all(v == entry.defaults.get(k) for k, v in values.items()) else "fixed")
    return _annotate(label, f"{_assignments(values)}, {how}")


def _annotate(label: str, note: str) -> str:
    """``EWC`` -> ``EWC (note)``; ``MAS (Avalanche)`` -> ``MAS (Avalanche; note)``."""
    return f"{label[:-1]}; {note})" if label.endswith(")") else f"{label} ({note})"


def _sci(value: float) -> str:
    """Three significant digits, exponent without padding: ``5.82e4``."""
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


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
                  and r["method"] in ALPHA_FAMILY + ("mas",) and r.get("importance_totals_per_experience")]
        totals = [t for t in totals if t and all(v is not None and v > 0 for v in t)]
        if not totals:
            continue
        out[label] = {
            "per_position": [float(np.mean([t[k] for t in totals])) for k in range(len(totals[0]))],
            "max_over_min": [max(t) / min(t) for t in totals],
            "n": len(totals),
        }
    return out


# ------------------------------------------------------------------ writing
def _cell(stat: dict[str, Any], percent: bool) -> str:
    """``mean ± 95 % CI`` for n >= 3, ``mean ± std`` for n = 2, the mean alone for n = 1."""
    if stat["mean"] is None:
        return "n/a"
    scale = 100.0 if percent else 1.0
    text = f"{stat['mean'] * scale:.2f}"
    error = stat["ci95"] if stat["n"] >= 3 else stat["std"]
    if error is not None:
        text += f" ± {error * scale:.2f}"
    return text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(result: dict[str, Any]) -> str:
    """The main table (bounds at the bottom), the order-sensitivity table and the importance
    totals table, with what ± means."""
    summary = result["methods"]
    header = ["Method"] + list(METRICS.values()) + ["n"]
    lines = [f"**{result['title']}**", "", _row(header),
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    separated = False
    for label, entry in summary.items():
        if entry["method"] in BOUNDS and not separated:
            lines.append(_row(["*bounds*"] + [""] * (len(header) - 1)))
            separated = True
        cells = [_cell(entry[m], m in PERCENT) for m in METRICS]
        lines.append(_row([entry["display_label"]] + cells + [str(entry["final_avg_acc"]["n"])]))
    ns = {entry["final_avg_acc"]["n"] for entry in summary.values()}
    spread = ("Mean ± 95 % CI half-width of the mean (Student t) over n seeds" if min(ns) >= 3 else
              "Mean over n = 1 seed (no spread)" if max(ns) == 1 else
              "Mean ± one standard deviation over n seeds (n = 2: a Student-t interval would be "
              "wider than the scale)" if max(ns) <= 2 else
              "Mean ± 95 % CI half-width (Student t) where n ≥ 3, ± one std where n = 2, the mean "
              "alone where n = 1")
    lines += ["", f"{spread}; 'ref.' = the reference paper's forgetting "
                  "(single-task accuracy minus final accuracy); Avalanche forgetting/BWT from its "
                  "metrics; train time excludes evaluation. 'chosen': picked on the validation "
                  "stream; 'at grid edge': the smallest or largest value of the grid (after any "
                  "extension of the grid); 'default': the registry value, no grid run."]
    lines += (_paired_table(result) + _claims(result) + _order_table(result)
              + _importance_table(result))
    return "\n".join(lines) + "\n"


def _paired_table(result: dict[str, Any]) -> list[str]:
    comparisons = result["paired_comparisons"]
    if not comparisons:
        return []
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    names = {"final_avg_acc": "final avg acc", "avg_forgetting_ref": "avg forgetting, ref.",
             "max_forgetting_ref": "max forgetting, ref."}
    by_label = _by_label(comparisons)
    lines = ["", f"**AlphaMAS − {comparisons[0]['baseline']}, paired over seeds (pp; two-sided "
                 "paired t-test, p beside each)**", "",
             _row(["Method"] + list(names.values()) + ["n"]), "|---|---:|---:|---:|---:|"]
    for label in [lb for lb in display if lb in by_label]:
        metrics, cells = by_label[label], []
        for metric in names:
            c = metrics.get(metric)
            if c is None or c["mean_difference"] is None:
                cells.append("n/a")
                continue
            cells.append(f"{100 * c['mean_difference']:+.2f} (p {_p_text(c)})")
        n = next(iter(metrics.values()))["n_seeds"]
        lines.append(_row([display.get(label, label)] + cells + [str(n)]))
    lines += ["", "Forgetting: positive = AlphaMAS forgets more. p is n/a where every seed gave "
                  "the same difference or fewer than 2 seeds were paired."]
    return lines


def _claims(result: dict[str, Any]) -> list[str]:
    if not result["seed_claims"]:
        return []
    return (["", f"**Seed claims** (paired over seeds, two-sided t-test; confirmed / "
                 f"contradicted at p < {CLAIM_ALPHA}):", ""]
            + [f"- {sentence}" for sentence in result["seed_claims"]])


def _order_table(result: dict[str, Any]) -> list[str]:
    sensitivity = result["order_sensitivity"]
    if not sensitivity:
        return []
    moved = result["task_names"][result["moved_pair"]]
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    lines = ["", f"**Order sensitivity: task {moved} moved from first to last place**", "",
             _row(["Method", "placements", "final acc spread (pp)", "final acc std (pp)"]),
             "|---|---:|---:|---:|"]
    for label in [lb for lb in result["methods"] if lb in sensitivity]:
        entry = sensitivity[label]
        values = [entry[k] for k in ("final_acc_spread", "final_acc_std")]
        lines.append(_row([display[label], str(len(entry["per_placement"]))]
                          + ["n/a" if v is None else f"{v * 100:.2f}" for v in values]))
    lines += ["", "The moved task's final accuracy per placement (mean over seeds): spread = "
                  "max − min over placements, std over placements (ddof = 1). Its reference "
                  "forgetting moves by the same amounts (the single-task accuracy it is measured "
                  "against does not depend on the order)."]
    return lines


def _importance_table(result: dict[str, Any]) -> list[str]:
    totals = result["importance_totals"]
    if not totals:
        return []
    names = [result["task_names"][p] for p in result["main_task_order"]]
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    lines = ["", "**Importance totals S_t = sum of Omega_t per task (training order), mean over "
                 "seeds**", "", _row(["Method"] + [f"S {n}" for n in names] + ["max/min", "n"]),
             "|" + "|".join(["---"] + ["---:"] * (len(names) + 2)) + "|"]
    for label in [lb for lb in result["methods"] if lb in totals]:
        entry = totals[label]
        lines.append(_row([display[label]] + [_sci(v) for v in entry["per_position"]]
                          + [_ratio_cell(entry["max_over_min"]), str(entry["n"])]))
    lines += ["", "max/min: the largest over the smallest S_t of a run, median over seeds "
                  "(range in brackets); "
                  "alpha-scaling gives every task alpha_t * S_t equal, plain MAS leaves this "
                  "ratio in the penalty."]
    return lines


def _ratio_cell(ratios: list[float]) -> str:
    median = float(np.median(ratios))
    if len(ratios) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


def write_report(output_dir: str | Path, runs: list[dict], singles: list[dict], *,
                 config, selection: dict | None = None) -> dict[str, Any]:
    """Write summary.json, runs.csv, per_task.csv, summary.csv, table.md and figures/."""
    output_dir = Path(output_dir)
    selection = selection or {}
    labels = table_order(runs)
    main_order = config.task_orders[0]
    main_key = "".join(map(str, main_order))
    runs_df, per_task_df = runs_table(runs, singles)
    summary = summarize(runs_df, per_task_df, main_key, labels)
    first = {r["label"]: r for r in runs}
    for label, entry in summary.items():
        run = first[label]
        entry.update(method=run["method"], params=run["params"],
                     display_label=display_label(label, run["method"], run["params"],
                                                 selection.get(run["method"])))
    benchmark = runs[0]["benchmark_name"] if runs else config.benchmark
    n_seeds = len(config.seeds)
    finished = sorted({entry["final_avg_acc"]["n"] for entry in summary.values()})
    seeds_text = (f"{n_seeds} seed(s)" if finished == [n_seeds] else
                  f"{finished[0]} of {n_seeds} seeds finished" if len(finished) == 1 else
                  f"{finished[0]}-{finished[-1]} of {n_seeds} seeds finished per row")
    title = (f"{benchmark}, {config.scenario}-incremental, {seeds_text}, "
             f"{config.epochs} epoch(s) per task, task order {main_key}")
    result = {
        "benchmark": benchmark,
        "benchmark_key": config.benchmark,
        "scenario": config.scenario,
        "n_seeds": n_seeds,
        "n_seeds_per_row": [finished[0], finished[-1]],
        "task_names": [task_name(config.benchmark, p) for p in range(N_TASKS)],
        "moved_pair": MOVED_PAIR,
        "title": title,
        "main_task_order": main_order,
        "methods": summary,
        "paired_comparisons": paired_comparisons(runs_df, main_key),
        "placement_spread_comparisons": placement_spread_comparisons(runs_df),
        "order_sensitivity": order_sensitivity(runs_df),
        "accuracy_matrices": accuracy_matrices(runs, main_order, list(summary)),
        "heldout_curves": heldout_curves(runs, main_order, list(summary)),
        "importance_totals": importance_totals(runs, main_order, list(summary)),
        "selection": selection,
        "n_runs": len(runs),
    }
    result["seed_claims"] = seed_claims(result["paired_comparisons"],
                                        result["placement_spread_comparisons"], list(summary))
    write_json_atomic(output_dir / "summary.json", result)
    runs_df.to_csv(output_dir / "runs.csv", index=False, na_rep="")
    per_task_df.to_csv(output_dir / "per_task.csv", index=False, na_rep="")
    flat = [{"label": label, "metric": metric, **entry[metric]}
            for label, entry in summary.items() for metric in METRICS]
    pd.DataFrame(flat).to_csv(output_dir / "summary.csv", index=False, na_rep="")
    (output_dir / "table.md").write_text(markdown_table(result))
    if config.benchmark == "split_mnist_hsu2018" and config.scenario in ("task", "domain"):
        (output_dir / "published.md").write_text(
            f"**{title}: beside Hsu et al. (2018), Table 2**\n\n" + hsu2018_comparison(result))
    result["figures"] = [str(p) for p in write_figures(output_dir / "figures", result)]
    write_json_atomic(output_dir / "summary.json", sanitize(result))
    return result
