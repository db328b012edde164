"""``write_report``: summary.json, the CSV files, table.md, published.md and figures/ of a comparison."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alpha_mas_avalanche.data.names import MOVED_PAIR, n_tasks
from alpha_mas_avalanche.experiment.figures import write_figures
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
from alpha_mas_avalanche.experiment.report.statistics import (
    order_sensitivity,
    paired_comparisons,
    placement_spread_comparisons,
)
from alpha_mas_avalanche.experiment.store import sanitize, write_json_atomic


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
