"""The paper set of a comparison's figures: a few methods at one-column width, each with its own colour and marker."""
from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from alpha_mas_avalanche.experiment.figure_style import (
    consecutive_runs,
    error_of,
    errors_of,
    legend_error_text,
    method_colours,
    method_linestyle,
    method_marker,
    save_png_and_pdf,
    seeds_text,
    task_axis_name,
)
from alpha_mas_avalanche.experiment.methods import MATRIX_METHODS, PAPER_METHODS, trains_once

#: One column of a two-column paper (inches): every paper figure is exactly this wide
COLUMN_WIDTH = 3.3
#: The smallest text (pt, at print size: the figures are saved at their printed width)
FONT_SIZE = 7.0
#: The paper's methods are the registry's PAPER_METHODS, in drawing order; each slot takes its
#: first alternative present in the results folder, and of a method with several rows (a λ
#: sweep) its first in table order. AlphaMAS and its per-task ablation are what the paper is
#: about; MAS is what AlphaMAS changes; EWC and SI are the best-known importance-weighted
#: quadratic penalties beside it (online EWC, L2 and Avalanche's MAS and SI differ from these
#: in details only, and Avalanche's SI has no effect on CPU); LwF stands for regularisation of
#: the outputs; Naive and Joint bound the range. Eight methods: few enough for eight hues and
#: eight markers a reader can tell apart.
PAPER_FIGURES = ("accuracy_over_tasks", "final_accuracy_and_forgetting", "accuracy_matrix",
                 "order_sensitivity")
#: The figures' text sizes at print size (none below :data:`FONT_SIZE`)
RC = {"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE, "axes.labelsize": FONT_SIZE,
      "xtick.labelsize": FONT_SIZE, "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE,
      "legend.title_fontsize": FONT_SIZE, "figure.titlesize": FONT_SIZE + 0.5,
      "axes.linewidth": 0.6, "lines.linewidth": 1.0, "lines.markersize": 4.0}
#: Text of a cell of the accuracy matrix, the widest it can be ("100" at :data:`FONT_SIZE`)
WIDEST_CELL = "100"


def paper_rows(result: dict[str, Any]) -> list[str]:
    """The labels of the rows the paper figures draw (see :data:`PAPER_METHODS`), in its
    order; slots with no row in ``result`` are left out."""
    rows = result["methods"]
    chosen = []
    for alternatives in PAPER_METHODS:
        present = [next((lb for lb in rows if rows[lb].get("method") == m), None) for m in alternatives]
        label = next((lb for lb in present if lb is not None), None)
        if label is not None:
            chosen.append(label)
    return chosen


class PaperFigures:
    """Draws the paper figures of ``result`` (the summary of :func:`.report.write_report`) as
    matplotlib :class:`~matplotlib.figure.Figure` objects, :data:`COLUMN_WIDTH` wide."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.labels = paper_rows(result)
        self.method = {lb: result["methods"][lb].get("method", "") for lb in self.labels}
        self.colour = method_colours(self.method)
        self.tasks = [result["task_names"][p] for p in result["main_task_order"]]
        self.task_axis = task_axis_name(result.get("benchmark_key", ""))
        seeds = result.get("n_seeds_per_row", [result["n_seeds"]])
        self.errors = legend_error_text(*seeds)
        self.means = "mean of " + seeds_text(*seeds)
        self.setting = f"{result['benchmark']}, {result['scenario']}-incremental"

    def draw(self, name: str) -> Any:
        """The figure ``name`` (one of :data:`PAPER_FIGURES`), or None where the runs lack its
        data or no paper method ran."""
        import matplotlib

        with matplotlib.rc_context(RC):
            return getattr(self, name)() if self.labels else None

    # ------------------------------------------------------------------ helpers
    def _figure(self, height: float, **subplots: Any) -> tuple[Any, Any]:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(COLUMN_WIDTH, height), layout="constrained")
        FigureCanvasAgg(fig)  # a canvas to measure text with (the layout of the cells)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02)
        return fig, fig.subplots(**subplots)

    def _title(self, fig: Any, what: str, *, error_bars: bool = True) -> None:
        """``what``, then the benchmark, scenario and error bars (or, for a figure without
        them, the seeds averaged), wrapped to the column."""
        errors = self.errors if error_bars else self.means
        errors = errors.replace("± ", "±\u00a0").replace(" %", "\u00a0%")  # kept on one line
        fig.suptitle(textwrap.fill(f"{what}. {self.setting}; {errors}", 62), fontsize=FONT_SIZE + 0.5)

    def _legend(self, fig: Any, handles: list, texts: list[str]) -> None:
        """The legend below the axes, two columns."""
        fig.legend(handles, texts, loc="outside lower center", ncols=2, frameon=False,
                   handlelength=2.2, columnspacing=1.0, borderaxespad=0.2)

    def _style(self, label: str) -> dict[str, Any]:
        """Colour, marker and line style of ``label``'s method, markers edged in white so that
        overlapping ones stay apart."""
        return {"color": self.colour[label], "marker": method_marker(self.method[label]),
                "linestyle": method_linestyle(self.method[label]), "markeredgecolor": "white",
                "markeredgewidth": 0.4}

    def _tick_step(self, count: int, room: float) -> int:
        """Every how many tasks a tick is labelled, for ``count`` tasks along ``room`` inches."""
        return max(1, math.ceil(count * FONT_SIZE * 1.4 / 72 / room))

    # ------------------------------------------------------------------ figures
    def accuracy_over_tasks(self) -> Any:
        """Mean accuracy on the tasks seen so far after each task; Joint as a dashed level."""
        curves = self.result.get("heldout_curves") or {}
        labels = [lb for lb in self.labels if lb in curves]
        if not labels:
            return None
        fig, ax = self._figure(3.0)
        n_tasks = len(self.tasks)
        step = self._tick_step(n_tasks, 2.6)
        for index, label in enumerate(labels):
            curve = curves[label]
            experience = curve.get("experience") or list(range(len(curve["mean"])))
            ends = [k for k in range(len(experience))
                    if k + 1 == len(experience) or experience[k + 1] != experience[k]]
            mean = np.array(curve["mean"], dtype=float)[ends] * 100
            error = errors_of(curve)[ends] * 100
            if trains_once(self.method[label]):  # all tasks at once: its end point as a level
                ax.axhline(mean[-1], color=self.colour[label], linewidth=1.0,
                           linestyle=method_linestyle(self.method[label]), label=label)
                continue
            xs = np.arange(1, len(mean) + 1)
            marks = slice(index % step, None, step)  # every step-th point, staggered
            ax.plot(xs, mean, markevery=marks, markersize=4.5, label=label, **self._style(label))
            ax.errorbar(xs[marks], mean[marks], yerr=error[marks], linestyle="none",
                        color=self.colour[label], elinewidth=0.6, capsize=1.5, capthick=0.6)
        ticks = list(range(1, n_tasks + 1, step))
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlim(0.6, n_tasks + 0.4)
        ax.set_xlabel("tasks trained")
        kind = curves[labels[0]]["kind"]
        ax.set_ylabel(("validation" if kind == "validation" else "test")
                      + " accuracy, tasks seen (%)")
        ax.grid(alpha=0.3, linewidth=0.5)
        self._legend(fig, *ax.get_legend_handles_labels())
        self._title(fig, "Accuracy on the tasks seen so far")
        return fig

    def final_accuracy_and_forgetting(self) -> Any:
        """Final average accuracy and average forgetting after training (accuracy right after
        training a task minus final: the forgetting the tests compare, not the reference
        definition, whose difference between two methods repeats their final accuracy's) per
        method: a point and its error bar each; a zero-length error bar is drawn as a bar
        across the point. Joint, trained once, has no forgetting point."""
        stats = {"final_avg_acc": "final accuracy (%),\nmean over tasks",
                 "avg_forgetting_avalanche": "forgetting after\ntraining (pp),\nmean over tasks"}
        fig, axes = self._figure(0.2 * len(self.labels) + 1.2, ncols=2, sharey=True)
        positions = np.arange(len(self.labels))
        for ax, (key, name) in zip(axes, stats.items()):
            for y, label in zip(positions, self.labels):
                if key != "final_avg_acc" and trains_once(self.method[label]):
                    continue
                stat = self.result["methods"][label][key]
                mean = (stat["mean"] if stat["mean"] is not None else math.nan) * 100
                error = error_of(stat) * 100
                style = {**self._style(label), "linestyle": "none"}
                ax.errorbar([mean], [y], xerr=[error], markersize=5, elinewidth=0.8,
                            capsize=2.0, capthick=0.8, **style)
                if error == 0:
                    ax.plot([mean], [y], marker="|", markersize=9, markeredgewidth=1.2,
                            color=self.colour[label], linestyle="none")
            ax.set_xlabel(name)
            ax.grid(axis="x", alpha=0.3, linewidth=0.5)
            ax.margins(x=0.12)
        axes[0].set_yticks(positions, self.labels)
        axes[0].invert_yaxis()
        self._title(fig, "Final accuracy and forgetting")
        return fig

    def accuracy_matrix(self) -> Any:
        """Accuracy on each task (column) after each task (row) for the methods of
        :data:`MATRIX_METHODS` (two panels a row, wide enough for the cells' numbers on five
        tasks); cells numbered only where the number fits at :data:`FONT_SIZE`."""
        matrices = self.result.get("accuracy_matrices") or {}
        labels = [lb for lb in self.labels if lb in matrices and self.method[lb] in MATRIX_METHODS]
        if not labels:
            return None
        ncols = min(2, len(labels))
        nrows = -(-len(labels) // ncols)
        fig, axes = self._figure(1.2 * nrows + 0.95, nrows=nrows, ncols=ncols, squeeze=False,
                                 sharex=True, sharey=True)
        n_tasks = len(self.tasks)
        step = self._tick_step(n_tasks, 1.2)
        image = None
        for ax, label in zip(axes.flat, labels):
            mean = np.array([[np.nan if v is None else v * 100 for v in row]
                             for row in matrices[label]["mean"]], dtype=float)
            image = ax.imshow(mean, vmin=0, vmax=100, cmap="viridis", aspect="equal")
            ax.set_title(label, pad=2)
            ticks = list(range(0, n_tasks, step))
            ax.set_xticks(ticks, [self.tasks[t] for t in ticks], rotation=90)
            ax.set_yticks(ticks, [self.tasks[t] for t in ticks])
            ax.tick_params(length=2, pad=1)
        for ax in axes.flat[len(labels):]:
            ax.set_visible(False)
        fig.supxlabel(f"{self.task_axis}, in training order", fontsize=FONT_SIZE)
        fig.supylabel("after training on", fontsize=FONT_SIZE)
        bar = fig.colorbar(image, ax=axes, shrink=0.8, aspect=25, pad=0.02)
        bar.set_label("test accuracy (%), mean over seeds")
        self._number_cells(fig, axes.flat[:len(labels)], labels, matrices)
        self._title(fig, "Accuracy on each task after each task", error_bars=False)
        return fig

    def _number_cells(self, fig: Any, axes: Any, labels: list[str], matrices: dict) -> None:
        """Each cell's mean to 1 pp where :data:`WIDEST_CELL` fits in a cell (measured after
        the layout); the numbers stay out of the layout, which is final by then."""
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        probe = fig.text(0, 0, WIDEST_CELL, fontsize=FONT_SIZE)
        widest = probe.get_window_extent(renderer).width
        probe.remove()
        n_tasks = len(self.tasks)
        if axes[0].get_window_extent(renderer).width / n_tasks < widest * 1.15:
            return
        for ax, label in zip(axes, labels):
            for (i, j), v in np.ndenumerate(np.array(matrices[label]["mean"], dtype=float)):
                if np.isfinite(v):
                    text = ax.text(j, i, f"{v * 100:.0f}", ha="center", va="center",
                                   fontsize=FONT_SIZE, color="white" if v < 0.6 else "black")
                    text.set_in_layout(False)

    def order_sensitivity(self) -> Any:
        """The moved task's final accuracy at each position in the sequence, a small offset
        per method; a zero-length error bar is drawn as a bar across the point."""
        sensitivity = self.result.get("order_sensitivity") or {}
        labels = [lb for lb in self.labels if lb in sensitivity]
        if not labels:
            return None
        fig, ax = self._figure(2.8)
        offsets = (np.arange(len(labels)) - (len(labels) - 1) / 2) * 0.1
        for offset, label in zip(offsets, labels):
            per_placement = sensitivity[label]["per_placement"]
            positions = sorted(int(p) for p in per_placement)
            stats = [per_placement[str(p)]["final_acc"] for p in positions]
            xs = np.array(positions, dtype=float) + offset
            ys = np.array([(s["mean"] if s["mean"] is not None else math.nan) * 100 for s in stats])
            errors = np.array([error_of(s) * 100 for s in stats])
            ax.errorbar(xs, ys, yerr=errors, markersize=4.5, elinewidth=0.7, capsize=1.5,
                        capthick=0.7, label=label, **self._style(label) | {"linestyle": "none"})
            for run in consecutive_runs(positions):  # lines only between neighbouring positions
                index = [positions.index(p) for p in run]
                ax.plot(xs[index], ys[index], color=self.colour[label],
                        linestyle=method_linestyle(self.method[label]))
            zero = errors == 0
            if zero.any():
                ax.plot(xs[zero], ys[zero], marker="_", markersize=9, markeredgewidth=1.2,
                        linestyle="none", color=self.colour[label])
        n_positions = len(self.tasks)
        ax.set_xticks(range(1, n_positions + 1))
        moved = self.result["task_names"][self.result["moved_pair"]]
        ax.set_xlabel(f"position of task {moved} in the sequence")
        ax.set_ylabel(f"final accuracy of {moved} (%)")
        ax.grid(alpha=0.3, linewidth=0.5)
        self._legend(fig, *ax.get_legend_handles_labels())
        self._title(fig, f"Order sensitivity: task {moved} moved")
        return fig


def write_paper_figures(folder: Path, result: dict[str, Any]) -> list[Path]:
    """Draw every paper figure the runs have data for into ``folder`` (emptied of earlier
    figures first); each saved as PNG (300 dpi) and PDF at :data:`COLUMN_WIDTH` wide."""
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.png"), *folder.glob("*.pdf")]:
        stale.unlink()
    figures = PaperFigures(result)
    written: list[Path] = []
    for name in PAPER_FIGURES:
        fig = figures.draw(name)
        if fig is not None:
            with matplotlib.rc_context(RC):
                written += save_png_and_pdf(fig, folder / name, dpi=300)
    return written


def write_paper_set(output_dir: Path) -> list[Path]:
    """The paper figures of the results folder ``output_dir`` (from its ``summary.json``)
    into ``figures/paper/``; nothing where no report has been written yet."""
    summary = output_dir / "summary.json"
    if not summary.is_file():
        return []
    return write_paper_figures(output_dir / "figures" / "paper", json.loads(summary.read_text()))
