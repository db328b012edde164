"""The figures of a comparison, drawn from the summary :mod:`.report` computes; each saved as
PNG and PDF (vector, for LaTeX).

Every figure names the benchmark, the scenario, the number of seeds and what its error bars
are (95 % CI of the mean for n >= 3 seeds, else one standard deviation); tasks are named by
their classes (on the long streams: their permutation or rotation angle). Each method keeps
its registry colour in every figure: the AlphaMAS rows one warm hue family, related
baselines light/dark shades of one hue (MAS and Avalanche's MAS, EWC and online EWC, SI and
Avalanche's SI), Naive and Joint greys.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from alpha_mas_avalanche.experiment.figure_style import (
    consecutive_runs,
    error_of,
    error_text,
    errors_of,
    legend_error_text,
    method_colours,
    method_linestyle,
    save_png_and_pdf,
    task_axis_name,
)
from alpha_mas_avalanche.experiment.methods import (
    FAMILIES,
    FAMILY_TITLES,
    REGISTRY,
    baseline_method,
    family_of,
    trains_once,
)

FIGURES = ("accuracy_matrix", "task_accuracy_over_sequence", "heldout_accuracy_per_epoch",
           "forgetting_per_task", "average_forgetting", "max_forgetting_vs_lambda",
           "order_sensitivity")
#: Colours of the accuracy matrix's scale: few enough to keep each its own in a PNG's
#: 256-colour palette, many enough to look continuous
HEATMAP_STEPS = 64
#: How the accuracy matrix prints its cells, by the number of tasks: format, font size
CELL_FORMATS = {n: ("{:.1f}", 6) for n in range(1, 7)} | {n: ("{:.0f}", 5.5) for n in range(7, 13)}


#: legend entries wrap at this many characters
LEGEND_WIDTH = 48
#: above this many tasks the names over a panel drop their common prefix ("perm. ")
MANY_TASKS = 6
#: the most shaded bands one panel holds; a family with more rows gets more panels
MAX_BANDS = 5


def _at_most(size: int, title: str, labels: list[str]) -> list[tuple[str, list[str]]]:
    """``labels`` in panels of at most ``size``, titled ``title (1/2)``, ``title (2/2)``."""
    chunks = [labels[i:i + size] for i in range(0, len(labels), size)] or [[]]
    return [(title if len(chunks) == 1 else f"{title} ({i + 1}/{len(chunks)})", chunk)
            for i, chunk in enumerate(chunks)]


class Figures:
    """Draws each figure of ``result`` (the summary of :func:`.report.write_report`)."""

    def __init__(self, result: dict[str, Any]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.result = result
        self.summary = result["methods"]
        self.labels = list(self.summary)
        self.display = {lb: self.summary[lb].get("display_label", lb) for lb in self.labels}
        self.method = {lb: self.summary[lb].get("method", "") for lb in self.labels}
        self.colour = method_colours(self.method)
        self.tasks = result["task_names"]  # by pair
        self.order = result["main_task_order"]
        seeds = result.get("n_seeds_per_row", [result["n_seeds"]])
        self.setting = f"{result['benchmark']}, {result['scenario']}-incremental"
        self.context = f"{self.setting}, {error_text(*seeds)}"
        self.errors = legend_error_text(*seeds)  # what a band or whisker is, for legends
        self.task_axis = task_axis_name(result.get("benchmark_key", ""))

    # ------------------------------------------------------------------ helpers
    def _title(self, fig, what: str, context: str | None = None) -> None:
        fig.suptitle(f"{what}\n{self.context if context is None else context}", fontsize=10)

    def _legend(self, fig, axes, title: str | None) -> None:
        """One legend for ``axes`` (an axis or several; each entry once), outside the data,
        right of the axes, in drawing (= table) order, entries wrapped at
        :data:`LEGEND_WIDTH` characters so a long label cannot squeeze the panels; ``title``
        says what the lines and error bars are (None: the entries say it)."""
        handles = {}
        for ax in np.atleast_1d(axes).flat:
            for handle, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, handle)
        fig.legend(list(handles.values()), [textwrap.fill(t, LEGEND_WIDTH) for t in handles],
                   loc="outside right center", fontsize=8, frameon=False, title=title,
                   title_fontsize=8)

    def _figure(self, *args, **kwargs):
        """A constrained-layout figure; its padding keeps a figure-wide x label clear of
        rotated tick labels (the default 3 pt lets them touch)."""
        fig, axes = self.plt.subplots(*args, layout="constrained", **kwargs)
        fig.get_layout_engine().set(h_pad=0.07)
        return fig, axes

    def _panels(self, count: int, width: float, height: float):
        """A grid of ``count`` small multiples (5 per row), the unused ones hidden; x tick
        labels on the lowest panel of each column."""
        ncols = min(5, count)
        nrows = -(-count // ncols)
        fig, axes = self._figure(nrows, ncols, figsize=(width * ncols + 1.6, height * nrows + 1.0),
                                 squeeze=False, sharex=True, sharey=True)
        for index, ax in enumerate(axes.flat):
            if index >= count:
                ax.set_visible(False)
            elif index + ncols >= count:  # nothing visible below it
                ax.xaxis.set_tick_params(labelbottom=True)
        return fig, axes

    def _panel_title(self, ax, label: str) -> None:
        """The method's label above the panel, framed in the method's colour."""
        ax.set_title(textwrap.fill(self.display[label], 26), fontsize=8)
        for spine in ax.spines.values():
            spine.set_edgecolor(self.colour[label])
            spine.set_linewidth(2.0)

    def _style(self, label: str) -> dict[str, Any]:
        return {"color": self.colour[label], "linestyle": method_linestyle(self.method[label])}

    def _task_label(self, position: int) -> str:
        return self.tasks[self.order[position]]

    # ------------------------------------------------------------------ figures
    def draw(self, name: str):
        """The figure ``name`` (one of :data:`FIGURES`), or None where the runs lack its data."""
        return getattr(self, name)()

    def accuracy_matrix(self):
        """Heatmap per method: accuracy (%) on each task (column) after each experience (row)."""
        matrices = self.result.get("accuracy_matrices") or {}
        labels = [lb for lb in self.labels if lb in matrices]
        if not labels:
            return None
        fig, axes = self._panels(len(labels), 2.4, 2.6)
        values = [v for lb in labels for row in matrices[lb]["mean"] for v in row if v is not None]
        vmin = max(0.0, np.floor(min(values) * 20) / 20) * 100
        names = [self._task_label(p) for p in range(len(self.order))]
        cmap = self.plt.get_cmap("viridis").resampled(HEATMAP_STEPS)
        cell_format = CELL_FORMATS.get(len(names))  # None: too many cells to print
        image = None
        for ax, label in zip(axes.flat, labels):
            mean = np.array([[np.nan if v is None else v * 100 for v in row]
                             for row in matrices[label]["mean"]], dtype=float)
            image = ax.imshow(mean, vmin=vmin, vmax=100, cmap=cmap, aspect="equal")
            for (i, j), v in np.ndenumerate(mean if cell_format else []):
                if np.isfinite(v):
                    ax.text(j, i, cell_format[0].format(v), ha="center", va="center",
                            fontsize=cell_format[1],
                            color="white" if v < vmin + 0.6 * (100 - vmin) else "black")
            self._panel_title(ax, label)
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
            ax.set_yticks(range(len(names)), [f"after {n}" for n in names], fontsize=7)
        fig.supxlabel(f"{self.task_axis}, in training order", fontsize=9)
        fig.supylabel("after training on", fontsize=9)
        colourbar = fig.colorbar(image, ax=axes, shrink=0.6)
        colourbar.set_label("test accuracy (%), mean over seeds")
        joint = any(trains_once(self.method[lb]) for lb in labels)
        n = self.result.get("n_seeds_per_row", [self.result["n_seeds"]])
        seeds = f"n = {n[0]} seeds" if n[0] == n[-1] else f"n = {n[0]}-{n[-1]} seeds per row"
        self._title(fig, "Accuracy matrix: mean test accuracy (%) on each task after each experience"
                    + (" (Joint: trained on all tasks at once, last row)" if joint else ""),
                    f"{self.setting}; each cell: the mean over {seeds} (no error shown; "
                    + ("" if cell_format else "values in summary.json, accuracy_matrices; ")
                    + "per-seed values in runs.csv)")
        return fig

    def task_accuracy_over_sequence(self):
        """Per method: one line per task, its accuracy after each experience (mean, band)."""
        matrices = self.result.get("accuracy_matrices") or {}
        labels = [lb for lb in self.labels if lb in matrices and not trains_once(self.method[lb])]
        if not labels:
            return None
        import matplotlib

        fig, axes = self._panels(len(labels), 2.6, 2.2)
        n_tasks = len(self.order)
        task_colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, n_tasks))
        steps = np.arange(1, n_tasks + 1)
        for ax, label in zip(axes.flat, labels):
            mean = matrices[label]["mean"]
            error = errors_of(matrices[label]) * 100
            for j in range(n_tasks):
                xs = steps[j:]
                ys = np.array([mean[i][j] for i in range(j, n_tasks)], dtype=float) * 100
                es = error[j:, j]
                ax.plot(xs, ys, marker="o", markersize=3, color=task_colours[j],
                        label=self._task_label(j))
                ax.fill_between(xs, np.clip(ys - es, 0, 100), np.clip(ys + es, 0, 100),
                                color=task_colours[j], alpha=0.2, linewidth=0)
            self._panel_title(ax, label)
            ax.set_xticks(steps, [self._task_label(i) for i in range(n_tasks)], rotation=90, fontsize=7)
            ax.grid(alpha=0.3)
        fig.supxlabel("after training on (experience)", fontsize=9)
        fig.supylabel("test accuracy of the task (%)", fontsize=9)
        self._legend(fig, axes.flat[0], title=f"task\n(line: mean;\nshaded: {self.errors})")
        self._title(fig, f"Accuracy of each task over the sequence (line: mean; shaded: {self.errors})")
        return fig

    def heldout_accuracy_per_epoch(self):
        """Mean accuracy over the tasks seen so far after each epoch, task boundaries marked;
        one panel per method family (:data:`~.methods.FAMILIES`; more where a family has more
        than :data:`MAX_BANDS` rows), Naive and Joint in every
        panel as references (no band). A method that changes the model after training
        (IMM merges) is labelled: its per-epoch points are the weights before that change,
        and diamonds mark the evaluated model after each experience (test stream)."""
        curves = self.result.get("heldout_curves") or {}
        labels = [lb for lb in self.labels if lb in curves]
        if not labels:
            return None
        bounds = [lb for lb in labels if family_of(self.method[lb]) == "bound"]
        groups = [chunk for f in FAMILIES if f != "bound" for chunk in _at_most(
            MAX_BANDS, FAMILY_TITLES[f], [lb for lb in labels if family_of(self.method[lb]) == f])]
        groups = [(title, group + bounds) for title, group in groups if group] or [("", bounds)]
        ncols = min(2, len(groups))
        nrows = -(-len(groups) // ncols)
        fig, axes = self._figure(nrows, ncols, figsize=(6.0 * ncols + 3.2, 3.6 * nrows + 0.8),
                                 sharey=True, sharex=True, squeeze=False)
        kind = curves[labels[0]]["kind"]
        for index, ax in enumerate(axes.flat):
            if index >= len(groups):
                ax.set_visible(False)
                continue
            title, group = groups[index]
            for label in group:
                self._heldout_line(ax, label, curves[label], band=label not in bounds)
            self._task_boundaries(ax, next((curves[lb]["experience"] for lb in group
                                            if not trains_once(self.method[lb])), None))
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            ax.xaxis.set_tick_params(labelbottom=True)
        fig.supxlabel("epoch over the task sequence" if kind == "validation" else
                      "after training on task (experience)", fontsize=9)
        fig.supylabel("validation accuracy, mean over seen tasks (%)" if kind == "validation"
                      else "test accuracy, mean over seen tasks (%)", fontsize=9)
        self._legend(fig, axes, title=f"line: mean; shaded: {self.errors}")
        if kind == "validation":
            what = ("Held-out accuracy after each epoch: validation split of every task seen so "
                    "far (dotted lines: task boundaries)")
        else:
            what = ("Accuracy on the tasks seen so far after each experience (test stream; these "
                    "runs predate the per-epoch validation curve)")
        self._title(fig, what)
        return fig

    def _heldout_line(self, ax, label: str, curve: dict[str, Any], band: bool = True) -> None:
        mean = np.array(curve["mean"], dtype=float) * 100
        error = errors_of(curve) * 100
        if trains_once(self.method[label]):  # all tasks at once: its end point as a reference
            ax.axhline(mean[-1], label=f"{self.display[label]}, after its last epoch",
                       linewidth=1.2, **self._style(label))
            return
        xs = np.arange(1, len(mean) + 1)
        change = getattr(REGISTRY.get(self.method[label]), "after_training", "")
        text = (f"{self.display[label]}: weights before being {change} (per epoch)" if change
                else self.display[label])
        style = {**self._style(label), **({"linestyle": "--"} if change else {})}
        ax.plot(xs, mean, marker=".", markersize=4, linewidth=1.2, label=text, **style)
        if band:
            ax.fill_between(xs, np.clip(mean - error, 0, 100), np.clip(mean + error, 0, 100),
                            color=self.colour[label], alpha=0.15, linewidth=0)
        if change and curve.get("experience"):
            self._evaluated_points(ax, label, curve["experience"], change)

    def _evaluated_points(self, ax, label: str, experience: list[int], change: str) -> None:
        """Diamonds at the end of each experience: the evaluated (e.g. merged) model's test
        accuracy, mean over the tasks seen so far (from the accuracy matrix; no band)."""
        matrix = (self.result.get("accuracy_matrices") or {}).get(label)
        if matrix is None:
            return
        ends = [k + 1 for k in range(len(experience))
                if k + 1 == len(experience) or experience[k + 1] != experience[k]]
        seen = [np.mean([v for v in row[:i + 1] if v is not None]) * 100
                for i, row in enumerate(matrix["mean"][:len(ends)])]
        ax.plot(ends[:len(seen)], seen, marker="D", markersize=5, linestyle="none",
                color=self.colour[label], markeredgecolor="black", markeredgewidth=0.6,
                label=f"{self.display[label]}: {change} model after each experience (test, mean)")

    def _task_boundaries(self, ax, experience: list[int] | None) -> None:
        """Dotted lines between the tasks, the task trained in each stretch named on top."""
        if experience is None:
            return
        starts = [k for k in range(1, len(experience)) if experience[k] != experience[k - 1]]
        for k in starts:
            ax.axvline(k + 0.5, color="0.6", linewidth=0.8, linestyle=":")
        edges = [0.5] + [k + 0.5 for k in starts] + [len(experience) + 0.5]
        names = [self._task_label(i) for i in range(len(edges) - 1)]
        prefix = os.path.commonprefix(names) if len(names) > MANY_TASKS else ""
        prefix = prefix[:prefix.rfind(" ") + 1]  # whole words: "perm. 1" of "perm. 10" stays
        top = ax.secondary_xaxis("top")
        top.set_xticks([(a + b) / 2 for a, b in zip(edges, edges[1:])],
                       [name[len(prefix):] for name in names],
                       fontsize=8 if len(names) <= MANY_TASKS else 7)
        if prefix:  # "perm. 1" ... "perm. 10": the numbers, the axis named once
            top.set_xlabel(self.task_axis, fontsize=8)
        top.tick_params(length=0)
        ax.set_xlim(0.5, len(experience) + 0.5)

    def forgetting_per_task(self):
        """Reference forgetting per task, one bar per method."""
        fig, ax = self._figure(figsize=(11, 4.2))
        n_tasks = len(self.tasks)
        width = 0.84 / max(len(self.labels), 1)
        for i, label in enumerate(self.labels):
            per_pair = self.summary[label]["forgetting_ref_per_pair"]
            means = [(per_pair[str(p)]["mean"] or 0.0) * 100 for p in range(n_tasks)]
            errors = [error_of(per_pair[str(p)]) * 100 for p in range(n_tasks)]
            ax.bar(np.arange(n_tasks) + (i + 0.5) * width - 0.42, means, width, yerr=errors,
                   capsize=1.5, error_kw={"linewidth": 0.7}, color=self.colour[label],
                   label=self.display[label])
        ax.set_xticks(np.arange(n_tasks), self.tasks)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel(self.task_axis)
        ax.set_ylabel("forgetting (%): single-task acc. − final acc.")
        ax.grid(axis="y", alpha=0.3)
        self._legend(fig, ax, title=f"bar: mean; whisker: {self.errors}")
        self._title(fig, "Forgetting per task (reference definition)")
        return fig

    def average_forgetting(self):
        """Average reference forgetting per method (table order, top to bottom), bounds after
        a gap."""
        fig, ax = self._figure(figsize=(11, 0.32 * len(self.labels) + 1.8))
        positions, y = [], 0.0
        for index, label in enumerate(self.labels):
            bound = family_of(self.method[label]) == "bound"
            if index and bound and family_of(self.method[self.labels[index - 1]]) != "bound":
                y += 0.8
            positions.append(y)
            y += 1.0
        stats = [self.summary[lb]["avg_forgetting_ref"] for lb in self.labels]
        ax.barh(positions, [(s["mean"] or 0.0) * 100 for s in stats],
                xerr=[error_of(s) * 100 for s in stats], capsize=2,
                color=[self.colour[lb] for lb in self.labels])
        ax.set_yticks(positions, [self.display[lb] for lb in self.labels], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel("average forgetting (%): single-task acc. − final acc., mean over tasks "
                      f"(bar: mean; whisker: {self.errors})")
        ax.grid(axis="x", alpha=0.3)
        self._title(fig, "Average forgetting over the tasks (reference definition)")
        return fig

    def max_forgetting_vs_lambda(self):
        """AlphaMAS's max forgetting against its lambda multiplier; plain MAS as a reference band."""
        sweep = [(float(self.summary[lb]["params"]["lambda_multiplier"]), lb) for lb in self.labels
                 if "lambda_multiplier" in self.summary[lb].get("params", {})]
        if len(sweep) < 2:  # a line needs two values of lambda
            return None
        sweep.sort()
        fig, ax = self._figure(figsize=(7, 4.2))
        xs = np.array([m for m, _ in sweep])
        stats = [self.summary[lb]["max_forgetting_ref"] for _, lb in sweep]
        ys = np.array([(s["mean"] or 0.0) * 100 for s in stats])
        es = np.array([error_of(s) * 100 for s in stats])
        ax.plot(xs, ys, color="0.35", linewidth=1.3, zorder=1)
        ax.fill_between(xs, ys - es, ys + es, color="0.35", alpha=0.15, linewidth=0,
                        label=f"AlphaMAS: {self.errors}")
        for (m, label), y in zip(sweep, ys):  # each λ in its colour of the other figures
            ax.plot([m], [y], marker="o", markersize=7, color=self.colour[label], linestyle="none",
                    markeredgecolor="black", markeredgewidth=0.6, zorder=2,
                    label=f"{self.display[label]}: mean")
        mas = [lb for lb in self.labels if self.method[lb] == baseline_method()]
        if mas:
            stat = self.summary[mas[0]]["max_forgetting_ref"]
            mean, error = (stat["mean"] or 0.0) * 100, error_of(stat) * 100
            ax.axhline(mean, color=self.colour[mas[0]], linestyle="--", linewidth=1.2,
                       label=f"{self.display[mas[0]]}: mean")
            if np.isfinite(error):
                ax.axhspan(mean - error, mean + error, color=self.colour[mas[0]], alpha=0.12,
                           linewidth=0, label=f"{self.display[mas[0]]}: {self.errors}")
        ax.set_xticks(xs, [("" if m == 1 else f"{m:g}") + "N" for m in xs])
        ax.set_xlabel("λ (sum of the alphas; N = number of tasks)")
        ax.set_ylabel("max forgetting over tasks (%), reference def.")
        ax.grid(alpha=0.3)
        self._legend(fig, ax, title=None)  # each entry names its statistic
        self._title(fig, "Max forgetting vs λ")
        return fig

    def order_sensitivity(self):
        """The moved task's final accuracy at each position, a small offset per method (its
        reference forgetting moves by the same amounts: the single-task accuracy it is
        measured against does not depend on the order)."""
        sensitivity = self.result.get("order_sensitivity") or {}
        labels = [lb for lb in self.labels if lb in sensitivity]
        if not labels:
            return None
        moved = self.tasks[self.result["moved_pair"]]
        fig, ax = self._figure(figsize=(7.5, 4.2))
        offsets = (np.arange(len(labels)) - (len(labels) - 1) / 2) * min(0.08, 0.5 / len(labels))
        flat = False
        for offset, label in zip(offsets, labels):
            per_placement = sensitivity[label]["per_placement"]
            positions = sorted(int(p) for p in per_placement)
            stats = [per_placement[str(p)]["final_acc"] for p in positions]
            xs = np.array(positions, dtype=float) + offset
            ys = np.array([(s["mean"] or 0.0) * 100 for s in stats])
            errors = np.array([error_of(s) * 100 for s in stats])
            ax.errorbar(xs, ys, yerr=errors, marker="o", markersize=4,
                        capsize=2, linestyle="none", elinewidth=0.8, label=self.display[label],
                        color=self.colour[label])
            zero = errors == 0  # no whisker to draw: a bar wider than the point says so
            if zero.any():
                ax.plot(xs[zero], ys[zero], marker="_", markersize=11, markeredgewidth=2.0,
                        linestyle="none", color=self.colour[label], zorder=3)
                flat = True
            for run in consecutive_runs(positions):  # lines only between neighbouring positions
                index = [positions.index(p) for p in run]
                ax.plot(xs[index], ys[index], linewidth=0.8, **self._style(label))
        n_positions = len(self.order)
        ax.set_xticks(range(1, n_positions + 1), [str(p) for p in range(1, n_positions + 1)])
        ax.set_xlabel(f"position of task {moved} in the sequence (points only where it was run)")
        ax.set_ylabel(f"final accuracy of {moved} (%)")
        ax.grid(alpha=0.3)
        self._legend(fig, ax, title=f"mean {self.errors}" + (
            "\n— across a point: zero spread\n(every seed the same)" if flat else ""))
        self._title(fig, f"Order sensitivity: task {moved} moved from first to last place")
        return fig


def write_figures(folder: Path, result: dict[str, Any]) -> list[Path]:
    """Draw every figure the runs have data for; save each as PNG and PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.png"), *folder.glob("*.pdf")]:  # figures of earlier designs
        stale.unlink()
    figures = Figures(result)
    written: list[Path] = []
    for name in FIGURES:
        fig = figures.draw(name)
        if fig is None:
            continue
        written += save_png_and_pdf(fig, folder / name, dpi=150, bbox_inches="tight")
        figures.plt.close(fig)
    return written
