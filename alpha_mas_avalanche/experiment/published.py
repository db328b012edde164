"""Published numbers to compare with, and the side-by-side table against a run's summary.

Hsu, Liu, Ramasamy & Kira, "Re-evaluating Continual Learning Scenarios: A Categorization and
Case for Strong Baselines" (2018), Table 2, split MNIST: average accuracy (%) over all tasks
after the last one, mean of 10 runs ± the spread their table prints.
"""
from __future__ import annotations

from typing import Any

#: registry name -> (their row, incremental task (mean, spread), incremental domain (mean, spread))
HSU2018_TABLE2: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "naive": ("Adam", (93.46, 2.01), (55.16, 1.38)),
    "l2": ("L2", (98.18, 0.96), (66.00, 3.73)),
    "ewc": ("EWC", (97.70, 0.81), (58.85, 2.59)),
    "online_ewc": ("Online EWC", (98.04, 1.10), (57.33, 1.44)),
    "si": ("SI", (98.56, 0.49), (64.76, 3.09)),
    "mas": ("MAS", (99.22, 0.21), (68.57, 6.85)),
    "lwf": ("LwF", (99.60, 0.03), (71.02, 1.26)),
    "joint": ("Offline", (99.52, 0.16), (98.59, 0.15)),
}
#: task-IL counts as reproduced within this many points of theirs
TASK_TOLERANCE_PP = 1.0


def hsu2018_comparison(summary: dict[str, Any]) -> str:
    """Markdown: every Hsu et al. row beside ours (mean ± std over our seeds), the
    difference, and reproduced / not reproduced (task: within 1 pp; domain: within the
    spread they print). ``summary``: a run's ``summary.json`` on ``split_mnist_hsu2018``."""
    scenario = summary["scenario"]
    if scenario not in ("task", "domain"):
        raise ValueError(f"summary: Hsu et al. report task and domain scenarios, not {scenario!r}")
    ours = {entry["method"]: (label, entry) for label, entry in summary["methods"].items()
            if entry["method"] in HSU2018_TABLE2}
    lines = [f"| Hsu et al. row | ours | theirs (%) | ours (%), mean ± std, n | difference (pp) | "
             f"{'within 1 pp' if scenario == 'task' else 'within their spread'} |",
             "|---|---|---:|---:|---:|---|"]
    for name, (row, task, domain) in HSU2018_TABLE2.items():
        mean, spread = task if scenario == "task" else domain
        if name not in ours:
            lines.append(f"| {row} | not run | {mean:.2f} ± {spread:.2f} | | | |")
            continue
        label, entry = ours[name]
        acc = entry["final_avg_acc"]
        value, std = 100 * acc["mean"], 100 * acc["std"]
        diff = value - mean
        bound = TASK_TOLERANCE_PP if scenario == "task" else spread
        verdict = "reproduced" if abs(diff) <= bound else "not reproduced"
        lines.append(f"| {row} | {label} | {mean:.2f} ± {spread:.2f} | {value:.2f} ± {std:.2f}, "
                     f"{acc['n']} | {diff:+.2f} | {verdict} |")
    return "\n".join(lines) + "\n"
