"""The alpha map's point numbers, measured on the drawn figure: both series numbered, no two
numbers overlapping, none on a point, all inside their panel, on a crowded hand-made map."""
from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pytest
from matplotlib.text import Annotation, Text

from alpha_mas_avalanche.experiment.label_placement import place_labels
from alpha_mas_avalanche.experiment.report.alpha_map import METRICS, SERIES
from alpha_mas_avalanche.experiment.spread_figure import COLORS, draw_alpha_map

matplotlib.use("Agg")


def crowded_rows(count: int = 12) -> list[dict]:
    """``count`` folders, most of them within a factor 1.3 of spread and 1 pp of each other,
    both series in each (as on the real map's Split MNIST cluster), two far away."""
    rng = np.random.default_rng(1)
    rows = []
    for k in range(count):
        spread = 1.8 + 0.05 * k if k < count - 2 else 60.0 + 10 * k
        series = {label: {m: {"mean": rng.normal(0, 0.005), "ci95": 0.02, "n": 5} for m in METRICS}
                  for label, *_ in SERIES}
        rows.append({"folder": f"folder_{k}", "spread_median": spread, "series": series})
    return rows


def text_box(annotation: Annotation, renderer):
    """The box of an annotation's text alone (its own extent includes the leader line)."""
    return Text.get_window_extent(annotation, renderer)


def overlap(a, b) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


@pytest.fixture(scope="module")
def figure(tmp_path_factory):
    rows = crowded_rows()
    fig = draw_alpha_map(rows, tmp_path_factory.mktemp("map") / "alpha_map")
    fig.draw_without_rendering()
    return fig, rows


def test_both_series_are_numbered_once_per_folder_in_their_colour(figure):
    fig, rows = figure
    for ax in fig.axes[:len(METRICS)]:
        numbers = [t for t in ax.texts if isinstance(t, Annotation)]
        for colour in COLORS:
            drawn = sorted(int(t.get_text()) for t in numbers
                           if matplotlib.colors.same_color(t.get_color(), colour))
            assert drawn == list(range(1, len(rows) + 1))


def test_no_number_overlaps_another_a_point_or_the_legend_and_all_stay_in_the_panel(figure):
    fig, rows = figure
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:len(METRICS)]:
        boxes = [text_box(t, renderer) for t in ax.texts if isinstance(t, Annotation)]
        for a, b in itertools.combinations(boxes, 2):
            assert overlap(a, b) == 0
        frame = ax.get_window_extent(renderer)
        for box in boxes:
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        legend = ax.get_legend()
        if legend is not None:
            assert all(overlap(box, legend.get_window_extent(renderer)) == 0 for box in boxes)
        points = [line for container in ax.containers for line in [container.lines[0]]]
        for line in points:
            half = line.get_markersize() * fig.dpi / 72 / 2
            for x, y in ax.transData.transform(line.get_xydata()):
                marker = matplotlib.transforms.Bbox([[x - half, y - half], [x + half, y + half]])
                assert all(overlap(box, marker) == 0 for box in boxes)


def test_a_label_moved_away_from_its_point_gets_a_leader_line(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    points = [(1.0, 1.0)] * 16  # sixteen labels on one point: at most eight fit around it
    ax.plot(*zip(*points), "o")
    ax.set(xlim=(0, 2), ylim=(0, 2))
    annotations = place_labels(ax, points, [str(k) for k in range(16)], ["black"] * 16)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    boxes = [text_box(a, renderer) for a in annotations]
    assert all(overlap(a, b) == 0 for a, b in itertools.combinations(boxes, 2))
    centre = ax.transData.transform((1.0, 1.0))
    for annotation, box in zip(annotations, boxes):
        gap = max(box.x0 - centre[0], centre[0] - box.x1, box.y0 - centre[1], centre[1] - box.y1)
        if gap > 12 * fig.dpi / 72:  # far from its point: a line says whose label it is
            assert annotation.arrow_patch is not None, annotation.get_text()
    assert sum(a.arrow_patch is not None for a in annotations) >= 8
