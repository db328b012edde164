"""The alpha-scaling map's figure: AlphaMAS − MAS against the spread of the S_t, one point
per results folder, for the final accuracy and the maximum forgetting."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alpha_mas_avalanche.experiment.spread import METRICS, SERIES

MARKERS = ("o", "s")
COLORS = ("tab:blue", "tab:orange")


def draw_alpha_map(rows: list[dict[str, Any]], stem: Path) -> None:
    """Two panels (final accuracy, maximum forgetting), x = median S_t max/min (log scale),
    y = paired difference with MAS in pp and its 95 % interval; saved as PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    drawn = [row for row in rows if any(any((row["series"][label] or {}).get(m) for m in METRICS)
                                        for label, *_ in SERIES)]  # at least one paired result
    numbers = {row["folder"]: k + 1 for k, row in enumerate(drawn)}
    figure = Figure(figsize=(10, 4.8), layout="constrained")
    axes = figure.subplots(1, len(METRICS), sharex=True)
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
            if index == 0:  # numbers (key below): neighbours on the log axis are close
                for x, s, row in points:
                    ax.annotate(str(numbers[row["folder"]]), (x, 100 * s["mean"]), fontsize=7,
                                xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlim(1.0, max(200.0, 2 * max((r["spread_median"] for r in rows), default=1.0)))
        ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200]))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("S_t max/min over the tasks (median over seeds)")
        ax.set_ylabel(f"difference in {name} (pp)")
        ax.set_title(f"{name.capitalize()}: AlphaMAS − MAS")
    if axes[0].get_legend_handles_labels()[0]:  # no legend for an empty map
        axes[0].legend(fontsize=7, loc="lower left")
    key = [Line2D([], [], linestyle="none", label=f"{k}: {folder}") for folder, k in numbers.items()]
    figure.legend(handles=key, loc="outside lower center", ncols=4, fontsize=7, handlelength=0,
                  title="results folders (by S_t spread)", title_fontsize=7, frameon=False)
    figure.suptitle("Where alpha-scaling can act: paired difference with MAS against the spread of S_t")
    for suffix in (".png", ".pdf"):
        figure.savefig(stem.with_suffix(suffix), dpi=150)
