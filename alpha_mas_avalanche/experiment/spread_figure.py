"""The alpha-scaling map's page (``alpha_map.md``, ``alpha_map.json``) and figures: AlphaMAS −
MAS against the spread of the S_t, one point per results folder, for the final accuracy and
the maximum forgetting; and, per results folder, S_t / max S_t and alpha_t task by task."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alpha_mas_avalanche.experiment.figure_style import save_png_and_pdf
from alpha_mas_avalanche.experiment.label_placement import place_labels
from alpha_mas_avalanche.experiment.report.alpha_map import METRICS, SERIES, alpha_map, markdown

MARKERS = ("o", "s")
COLORS = ("tab:blue", "#d95f02")


def draw_alpha_map(rows: list[dict[str, Any]], stem: Path) -> Any:
    """Two panels (final accuracy, maximum forgetting), x = median S_t max/min (log scale),
    y = paired difference with MAS in pp and its 95 % interval, every point numbered in its
    series' colour by its results folder (the key below; numbers placed clear of each other,
    of the points and of the legend); saved as PNG and PDF. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    drawn = [row for row in rows if any(any((row["series"][label] or {}).get(m) for m in METRICS)
                                        for label, *_ in SERIES)]  # at least one paired result
    numbers = {row["folder"]: k + 1 for k, row in enumerate(drawn)}
    figure = Figure(figsize=(10, 4.8), layout="constrained")
    axes = figure.subplots(1, len(METRICS), sharex=True)
    labels: dict[Any, list] = {ax: [] for ax in axes}
    for ax, (metric, name) in zip(axes, METRICS.items()):
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        for index, ((label, *_), marker, color) in enumerate(zip(SERIES, MARKERS, COLORS)):
            points = [(row["spread_median"], (row["series"][label] or {}).get(metric), row)
                      for row in drawn]
            points = [(x, s, row) for x, s, row in points if s is not None]
            if not points:
                continue
            offset = 1.0 + 0.04 * index  # side by side where two series share a folder
            n = sorted({s["n"] for _, s, _ in points})
            ax.errorbar([x * offset for x, _, _ in points], [100 * s["mean"] for _, s, _ in points],
                        yerr=[100 * s["ci95"] for _, s, _ in points], fmt=marker, color=color,
                        capsize=3, linestyle="none",
                        label=f"{label} − MAS (95 % CI, n = {'/'.join(map(str, n))} seeds)")
            labels[ax] += [((x * offset, 100 * s["mean"]), str(numbers[row["folder"]]), color,
                            100 * s["ci95"]) for x, s, row in points]  # numbers: placed last
        ax.set_xscale("log")
        ax.set_xlim(1.0, max(200.0, 2 * max((r["spread_median"] for r in rows), default=1.0)))
        ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200]))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("S_t max/min over the tasks (median over seeds)")
        ax.set_ylabel(f"difference in {name} (pp)")
        ax.set_title(f"{name.capitalize()}: AlphaMAS − MAS")
    if axes[0].get_legend_handles_labels()[0]:  # no legend for an empty map
        low, high = axes[0].get_ylim()  # an empty band at the bottom holds the legend
        axes[0].set_ylim(low - 0.2 * (high - low), high)
        axes[0].legend(fontsize=7, loc="lower right")
    key = [Line2D([], [], linestyle="none", label=f"{k}: {folder}") for folder, k in numbers.items()]
    figure.legend(handles=key, loc="outside lower center", ncols=4, fontsize=7, handlelength=0,
                  title="results folders (by S_t spread)", title_fontsize=7, frameon=False)
    figure.suptitle("Where alpha-scaling can act: paired difference with MAS against the spread of S_t")
    FigureCanvasAgg(figure)  # measures the labels' boxes
    for ax, placed in labels.items():  # each number where it overlaps no other, point or legend
        if placed:
            points, texts, colours, errors = zip(*placed)
            place_labels(ax, points, texts, colours, errors=errors, fontsize=7)
    save_png_and_pdf(figure, stem, dpi=150)
    return figure


def draw_per_task(rows: list[dict[str, Any]], stem: Path) -> None:
    """One panel per results folder: S_t / max S_t and alpha_t (λ = N, after the last task)
    against the task's position in training, medians over seeds, log y; PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not rows:
        return
    columns = min(4, len(rows))
    lines = -(-len(rows) // columns)
    figure = Figure(figsize=(3.0 * columns, 2.4 * lines + 0.8), layout="constrained")
    axes = figure.subplots(lines, columns, sharey=True, squeeze=False).ravel()
    for ax, row in zip(axes, rows):
        profile = row["per_task"]
        positions = range(1, len(profile["relative_totals"]) + 1)
        ax.plot(positions, profile["relative_totals"], "o-", color="tab:green", markersize=3,
                label="S_t / max S_t")
        ax.plot(positions, profile["alphas"], "s--", color="tab:purple", markersize=3,
                label="alpha_t (λ = N)")
        ax.axhline(1.0, color="0.6", linewidth=0.6)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{row['folder']} (S_t max/min {row['spread_median']:.1f})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("median over seeds", fontsize=8)
    for ax in axes[len(rows) - columns:len(rows)]:
        ax.set_xlabel("task, in training order", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    figure.suptitle("Importance totals and alphas per task, AlphaMAS (tuned) after the last task")
    save_png_and_pdf(figure, stem, dpi=130)


def write_alpha_map(results: Path, output: Path | None = None) -> list[dict[str, Any]]:
    """Write ``alpha_map.md``, ``alpha_map.json`` and the figures (``alpha_map``,
    ``per_task``) into ``output``."""
    output = output or results / "alpha_map"
    output.mkdir(parents=True, exist_ok=True)
    rows = alpha_map(results)
    (output / "alpha_map.md").write_text(markdown(rows))
    (output / "alpha_map.json").write_text(json.dumps(rows, indent=1))
    draw_alpha_map(rows, output / "alpha_map")
    draw_per_task(rows, output / "per_task")
    return rows


