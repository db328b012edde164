"""What the figures claim, checked on a committed comparison (results/split_mnist: 17 rows,
5 seeds and 10 for the deciding rows, IMM among them): the held-out curve of a method that changes the model after
training says so and marks the evaluated model; at most 5 bands per panel; every legend
names its error bar; no line joins positions that were not run; the accuracy matrix's
title says its cells are means; and on results/permuted_mnist (10 tasks) that the
held-out panels keep their width and their task names."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from alpha_mas_avalanche.experiment.figures import FIGURES, Figures

SUMMARY = Path(__file__).resolve().parents[1] / "results" / "split_mnist" / "summary.json"


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(SUMMARY.read_text())


@pytest.fixture(scope="module")
def figures(result):
    drawn = Figures(result)
    yield drawn
    drawn.plt.close("all")


def legend_texts(fig) -> list[str]:
    texts = []
    for legend in fig.legends:
        texts += [legend.get_title().get_text()] + [t.get_text() for t in legend.get_texts()]
    return texts


def test_imm_heldout_curve_says_it_is_unmerged_and_marks_the_merged_model(figures, result):
    fig = figures.heldout_accuracy_per_epoch()
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    unmerged = lines["IMM: weights before being merged (per epoch)"]
    merged = lines["IMM: merged model after each experience (test, mean)"]
    experience = result["heldout_curves"]["IMM"]["experience"]
    ends = [k + 1 for k in range(len(experience))
            if k + 1 == len(experience) or experience[k + 1] != experience[k]]
    assert list(merged.get_xdata()) == ends == [5, 10, 15, 20, 25]
    matrix = result["accuracy_matrices"]["IMM"]["mean"]
    expected = [100 * np.mean(row[:i + 1]) for i, row in enumerate(matrix)]  # seen tasks
    np.testing.assert_allclose(merged.get_ydata(), expected)
    # the per-epoch points are Naive's (before merging); the merged model forgets far less
    assert unmerged.get_ydata()[-1] < merged.get_ydata()[-1] - 5


def test_each_heldout_panel_has_at_most_five_bands(figures):
    fig = figures.heldout_accuracy_per_epoch()
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]
    # AlphaMAS's six rows (tuned, per-task, the write-up's four strengths) in two panels,
    # then MAS, EWC/SI/L2, LwF/EBLL/IMM
    assert [ax.get_title() for ax in panels][:2] == ["AlphaMAS (1/2)", "AlphaMAS (2/2)"]
    assert len(panels) == 5
    for ax in panels:
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) <= 5, ax.get_title()


@pytest.mark.parametrize("name", FIGURES)
def test_every_legend_names_its_error_bar_and_n(figures, name):
    fig = figures.draw(name)
    texts = legend_texts(fig)
    if texts:
        assert any("95 % CI; n = 5-10 seeds per row" in text for text in texts), texts
        assert not any("error" in text for text in texts), texts


def test_no_line_joins_positions_that_were_not_run(result):
    partial = copy.deepcopy(result)
    label = next(iter(partial["order_sensitivity"]))
    placements = partial["order_sensitivity"][label]["per_placement"]
    for position in ("2", "3", "4"):  # run first and last only, as the quick preset does
        del placements[position]
    drawn = Figures(partial)
    fig = drawn.order_sensitivity()
    for line in fig.axes[0].get_lines():
        if line.get_linestyle() not in ("None", "none", ""):
            steps = np.diff(np.sort(line.get_xdata()))
            assert np.all(steps < 1.5), (line.get_label(), line.get_xdata())
    points = [c for c in fig.axes[0].containers if c.get_label() == drawn.display[label]]
    assert sorted(np.round(points[0].lines[0].get_xdata())) == [1, 5]
    drawn.plt.close(fig)


def test_accuracy_matrix_title_says_the_cells_are_means_without_error(figures):
    title = figures.accuracy_matrix()._suptitle.get_text()
    assert "mean test accuracy" in title and "each cell: the mean over n = 5-10 seeds" in title
    assert "±" not in title and "std" not in title and "CI" not in title


def test_a_ten_task_streams_heldout_panels_keep_their_width_and_readable_task_names():
    """Permuted MNIST (10 tasks, SI (Avalanche)'s long no-effect label): legend entries wrap,
    so the panels keep most of the figure's width; the names over each panel drop their
    common "perm. " (the axis says it once) and no two of them overlap."""
    summary = json.loads((SUMMARY.parents[1] / "permuted_mnist" / "summary.json").read_text())
    drawn = Figures(summary)
    fig = drawn.heldout_accuracy_per_epoch()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("no effect" in t for t in texts)
    assert all(len(line) <= 48 for t in texts for line in t.split("\n"))
    legend_width = fig.legends[0].get_window_extent(renderer).width
    assert legend_width < 0.25 * fig.bbox.width
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]
    assert all(ax.get_window_extent(renderer).width > 0.3 * fig.bbox.width for ax in panels)
    for ax in panels:
        top = next(child for child in ax.child_axes if child.get_xticklabels())
        labels = top.get_xticklabels()
        assert [t.get_text() for t in labels] == [str(k) for k in range(1, 11)]
        assert top.get_xlabel() == "task (pixel permutation)"
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))
    drawn.plt.close("all")
