"""The figures of a comparison (matplotlib PNGs), drawn from the summary :mod:`.report` computes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from alpha_mas_avalanche.data import MOVED_PAIR, N_TASKS

def write_figures(folder: Path, result: dict[str, Any]) -> list[Path]:
    """The reference paper's figures, with 95 % CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    summary = result["methods"]
    labels = list(summary)
    written: list[Path] = []

    def save(fig, name):
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    _forgetting_per_task(plt, save, summary, labels)
    _average_forgetting(plt, save, summary, labels)
    _accuracy_per_epoch(plt, save, result["epoch_curves"])
    _max_forgetting_per_lambda(plt, save, summary, labels)
    if result["order_sensitivity"]:
        _moved_task_per_placement(plt, save, result["order_sensitivity"])
    return written


def _bars(ax, names, stats_list, scale=100.0):
    means = [(s["mean"] or 0.0) * scale for s in stats_list]
    errors = [(s["ci95"] or 0.0) * scale for s in stats_list]
    ax.bar(range(len(names)), means, yerr=errors, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")


def _finish(save, fig, ax, name: str, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, title and a small legend; save as ``name``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    save(fig, name)


def _forgetting_per_task(plt, save, summary: dict, labels: list[str]) -> None:
    """Reference forgetting per task, one bar per method."""
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        per_pair = summary[label]["forgetting_ref_per_pair"]
        means = [(per_pair[str(p)]["mean"] or 0.0) * 100 for p in range(N_TASKS)]
        errors = [(per_pair[str(p)]["ci95"] or 0.0) * 100 for p in range(N_TASKS)]
        ax.bar(np.arange(N_TASKS) + i * width, means, width, yerr=errors, capsize=2, label=label,
               color=plt.cm.tab20(i % 20))
    ax.set_xticks(np.arange(N_TASKS) + 0.4 - width / 2, [f"pair {p}" for p in range(N_TASKS)])
    ax.set_ylabel("forgetting (reference def., %)")
    ax.set_title("Forgetting per task (pair k = the reference's task k+1)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    save(fig, "forgetting_per_task.png")


def _bar_figure(plt, save, names: list[str], stats_list: list[dict], figsize: tuple[int, int],
                ylabel: str, title: str, name: str) -> None:
    """One bar per name (mean, 95 % CI error bar), saved as ``name``."""
    fig, ax = plt.subplots(figsize=figsize)
    _bars(ax, names, stats_list)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save(fig, name)


def _average_forgetting(plt, save, summary: dict, labels: list[str]) -> None:
    _bar_figure(plt, save, labels, [summary[lb]["avg_forgetting_ref"] for lb in labels], (7, 4),
                "average forgetting (reference def., %)", "Average forgetting",
                "average_forgetting.png")


def _accuracy_per_epoch(plt, save, curves: dict[str, list]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), np.asarray(curve) * 100, marker=".", label=label)
    _finish(save, fig, ax, "accuracy_per_epoch.png", "epoch (over the whole task sequence)",
            "training accuracy (%)", "Accuracy per epoch")


def _max_forgetting_per_lambda(plt, save, summary: dict, labels: list[str]) -> None:
    """MAS and AlphaMAS rows only (none: no figure)."""
    lambda_labels = [lb for lb in labels if lb == "MAS" or lb.startswith("AlphaMAS")]
    if lambda_labels:
        _bar_figure(plt, save, lambda_labels,
                    [summary[lb]["max_forgetting_ref"] for lb in lambda_labels], (6, 4),
                    "max forgetting over tasks (reference def., %)", "Max forgetting per lambda",
                    "max_forgetting_per_lambda.png")


def _moved_task_per_placement(plt, save, sensitivity: dict[str, Any]) -> None:
    """The moved pair's final accuracy at each placement, one line per method."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, entry in sensitivity.items():
        positions = sorted(entry["per_placement"], key=int)
        means = [(entry["per_placement"][p]["final_acc"]["mean"] or 0.0) * 100 for p in positions]
        errors = [(entry["per_placement"][p]["final_acc"]["ci95"] or 0.0) * 100 for p in positions]
        ax.errorbar([int(p) for p in positions], means, yerr=errors, marker="o", capsize=3,
                    label=label)
    _finish(save, fig, ax, "moved_task_per_placement.png",
            f"position of pair {MOVED_PAIR} in the task sequence", "its final accuracy (%)",
            "Order sensitivity: moved task")
