"""``write_report``: summary.json, the CSV files, table.md, published.md and figures/ of a comparison."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alpha_mas_avalanche.data.names import MOVED_PAIR, n_tasks
from alpha_mas_avalanche.experiment.figures import write_figures
from alpha_mas_avalanche.experiment.methods import method_label
from alpha_mas_avalanche.experiment.published import hsu2018_comparison
from alpha_mas_avalanche.experiment.report.aggregates import (
    accuracy_matrices,
    heldout_curves,
    importance_totals,
)
from alpha_mas_avalanche.experiment.report.claims import seed_claims
from alpha_mas_avalanche.experiment.report.frames import METRICS, runs_table, summarize
from alpha_mas_avalanche.experiment.report.labels import display_label, table_order, task_name
from alpha_mas_avalanche.experiment.report.markdown import markdown_table
from alpha_mas_avalanche.experiment.report.sensitivity import compare_peaks
from alpha_mas_avalanche.experiment.report.significance import adjust_family
from alpha_mas_avalanche.experiment.sensitivity_figure import draw_sensitivity
from alpha_mas_avalanche.experiment.report.statistics import (
    order_sensitivity,
    paired_comparisons,
    placement_spread_comparisons,
)
from alpha_mas_avalanche.experiment.store import sanitize, write_json_atomic


#: the family of tests of a results folder's page
FAMILY = ("every row but MAS and Joint minus MAS, paired over the seeds both ran in the main "
          "task order, on final accuracy, average and maximum forgetting and intransigence, "
          "and the placement spread where rows ran in several orders")


def current_labels(runs: list[dict]) -> list[dict]:
    """The runs with the row label today's registry gives their method and parameters: a run
    resumed from a record written under an older label joins its method's row."""
    return [{**r, "label": method_label(r["method"], r["params"])} for r in runs]


def write_report(output_dir: str | Path, runs: list[dict], singles: list[dict], *,
                 config, selection: dict | None = None,
                 sensitivity: dict[str, dict] | None = None) -> dict[str, Any]:
    """Write summary.json, runs.csv, per_task.csv, summary.csv (with each row's verdict against
    MAS), comparisons.csv (every test of the page's family), table.md and figures/."""
    output_dir = Path(output_dir)
    selection = selection or {}
    runs = current_labels(runs)
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
    planned = sorted({len(m.seeds or config.seeds) for m in config.methods})
    seeds_text = (f"{n_seeds} seed(s)" if finished == planned == [n_seeds] else
                  f"{finished[0]} of {n_seeds} seeds finished" if planned == [n_seeds] and len(finished) == 1
                  else f"{finished[0]}-{finished[-1]} seeds per row (n in the table)")
    epochs = (f"{config.epochs} epoch(s) per task" if config.first_task_epochs in (None, config.epochs)
              else f"{config.first_task_epochs} epoch(s) on the first task, {config.epochs} on the others")
    order_text = main_key if len(main_order) <= 10 else f"0..{len(main_order) - 1}"
    title = f"{benchmark}, {config.scenario}-incremental, {seeds_text}, {epochs}, task order {order_text}"
    result = {
        "benchmark": benchmark,
        "benchmark_key": config.benchmark,
        "scenario": config.scenario,
        "n_seeds": n_seeds,
        "n_seeds_per_row": [finished[0], finished[-1]],
        "task_names": [task_name(config.benchmark, p) for p in range(n_tasks(config.benchmark))],
        "moved_pair": MOVED_PAIR,
        "title": title,
        "main_task_order": main_order,
        "methods": summary,
        "paired_comparisons": [],
        "placement_spread_comparisons": [],
        "order_sensitivity": order_sensitivity(runs_df),
        "accuracy_matrices": accuracy_matrices(runs, main_order, list(summary)),
        "heldout_curves": heldout_curves(runs, main_order, list(summary)),
        "importance_totals": importance_totals(runs, main_order, list(summary)),
        "selection": selection,
        "sensitivity": sensitivity or {},
        "sensitivity_peaks": compare_peaks(sensitivity or {}),
        "provenance": run_commits(runs),
        "n_runs": len(runs),
    }
    paired, spread = paired_comparisons(runs_df, main_key), placement_spread_comparisons(runs_df)
    family = adjust_family(paired + spread, FAMILY)
    result["paired_comparisons"], result["placement_spread_comparisons"] = (
        family[:len(paired)], family[len(paired):])
    result["seed_claims"] = seed_claims(result["paired_comparisons"],
                                        result["placement_spread_comparisons"], list(summary))
    write_json_atomic(output_dir / "summary.json", result)
    runs_df.to_csv(output_dir / "runs.csv", index=False, na_rep="")
    per_task_df.to_csv(output_dir / "per_task.csv", index=False, na_rep="")
    against_mas = {(c["label"], c["metric"]): c for c in family}
    flat = [{"label": label, "metric": metric, **entry[metric],
             **_against_mas(against_mas.get((label, metric)))}
            for label, entry in summary.items() for metric in METRICS]
    pd.DataFrame(flat).to_csv(output_dir / "summary.csv", index=False, na_rep="")
    (output_dir / "table.md").write_text(markdown_table(result))
    if config.benchmark == "split_mnist_hsu2018" and config.scenario in ("task", "domain"):
        (output_dir / "published.md").write_text(
            f"**{title}: beside Hsu et al. (2018), Table 2**\n\n" + hsu2018_comparison(result))
    pd.DataFrame(family).to_csv(output_dir / "comparisons.csv", index=False, na_rep="")
    result["figures"] = [str(p) for p in write_figures(output_dir / "figures", result)]
    if result["sensitivity"]:
        result["figures"].append(str(draw_sensitivity(
            result["sensitivity"], f"{benchmark}, {config.scenario}-incremental",
            output_dir / "figures" / "sensitivity")))
    write_json_atomic(output_dir / "summary.json", sanitize(result))
    return result


def _against_mas(comparison: dict | None) -> dict[str, Any]:
    """The summary.csv columns of a row's comparison with MAS on one metric (empty if none)."""
    keys = ("mean_difference", "p_value", "p_holm", "p_tost_holm", "mde_80", "verdict")
    if comparison is None:
        return {f"vs_mas_{k}" if k == "mean_difference" else k: None for k in keys}
    return {f"vs_mas_{k}" if k == "mean_difference" else k: comparison[k] for k in keys}


def run_commits(runs: list[dict]) -> dict[str, int]:
    """How many runs each commit made: ``{"commit abc1234": n, "commit def5678 (dirty tree)":
    n, "no recorded commit": n}`` (records written before commits were recorded have none)."""
    counts: dict[str, int] = {}
    for run in runs:
        commit = run.get("commit")
        key = ("no recorded commit" if not commit else
               f"commit {commit[:7]}" + (" (dirty tree)" if run.get("dirty") else ""))
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
