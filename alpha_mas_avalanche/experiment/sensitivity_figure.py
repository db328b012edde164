"""The sensitivity figure: validation and test final accuracy against the strength, one line
per method (mean, 95 % CI band over seeds), the value chosen on validation marked."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from alpha_mas_avalanche.experiment.figure_style import (
    error_of,
    error_text,
    method_colours,
    save_png_and_pdf,
)
from alpha_mas_avalanche.experiment.methods import REGISTRY

STREAMS = {"valid": "validation stream (chooses λ)", "test": "test stream"}


def draw_sensitivity(sensitivity: dict[str, dict[str, Any]], title: str, stem: Path) -> Path:
    """:func:`sensitivity_figure` saved as ``stem``.png and .pdf; returns the PNG's path."""
    save_png_and_pdf(sensitivity_figure(sensitivity, title), stem, dpi=130)
    return stem.with_suffix(".png")


def sensitivity_figure(sensitivity: dict[str, dict[str, Any]], title: str) -> Any:
    """Two panels (validation, test) of every curve of :func:`.report.sensitivity.curves`,
    intervals cut to accuracy's range 0-100 % (the title says so where one was); a value
    where training diverged is a cross on the panel's floor, each method's in its own row."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = {m: REGISTRY[m].label if m in REGISTRY else m for m in sensitivity}
    colour = method_colours({labels[m]: m for m in sensitivity})
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    ns, cut, diverged = set(), False, False
    for ax, (stream, name) in zip(axes, STREAMS.items()):
        crossed = False
        for index, (method, curve) in enumerate(sensitivity.items()):
            lost = [v for v, k in zip(curve["values"], curve.get("diverged", {}).get(stream, []))
                    if k]
            if lost:  # diverged at some seed: a cross on the panel's floor, one row per method
                crossed = diverged = True
                ax.plot(lost, [0.03 + 0.05 * index] * len(lost), marker="x", markersize=7,
                        linestyle="none",
                        color=colour[labels[method]], transform=ax.get_xaxis_transform(),
                        clip_on=False)
            points = [(v, s) for v, s in zip(curve["values"], curve[stream]) if s["mean"] is not None]
            if not points:
                continue
            x = np.array([v for v, _ in points], dtype=float)
            y = 100 * np.array([s["mean"] for _, s in points])
            error = 100 * np.array([error_of(s) for _, s in points])
            ns.update(s["n"] for _, s in points)
            ax.plot(x, y, marker="o", markersize=3, color=colour[labels[method]],
                    label=labels[method])
            cut = cut or bool(np.any(y - error < 0) or np.any(y + error > 100))
            ax.fill_between(x, np.clip(y - error, 0, 100), np.clip(y + error, 0, 100),
                            color=colour[labels[method]], alpha=0.2, linewidth=0)
            chosen = [(v, value) for v, value in zip(x, y) if np.isclose(v, curve["chosen"])]
            if chosen:
                # each later star smaller and on top, so stars at the same point nest visibly
                ax.plot(*chosen[0], marker="*", markersize=14 - 3 * index, zorder=3 + index,
                        color=colour[labels[method]], markeredgecolor="black",
                        markeredgewidth=0.6, linestyle="none")
        low, high = ax.get_ylim()
        if crossed:  # room below the curves for the rows of crosses
            low -= 0.18 * (high - low)
        ax.set_ylim(max(low, 0), min(high, 100.5))  # accuracy's range, a margin above 100 %
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("strength λ (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final average accuracy (%)")
    axes[0].legend(fontsize=8, frameon=False)
    figure.suptitle(f"{title}: final accuracy against the strength λ\n"
                    f"{error_text(min(ns), max(ns))}"
                    + (" (intervals cut to 0-100 %)" if cut else "") + "; ★ chosen on validation"
                    + ("; ✕ training diverged (at one seed or more)" if diverged else ""),
                    fontsize=9)
    return figure
