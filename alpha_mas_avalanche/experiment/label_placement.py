"""Labels beside the points of a scatter plot, placed where they overlap no other label, point or legend."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Distances (points) from a point to the nearest edge of its label, tried in turn
RADII = (2.0, 5.0, 9.0, 14.0, 20.0, 28.0, 38.0, 50.0, 64.0, 80.0, 100.0)
#: Directions tried at each distance, counter-clockwise from "upper right" (degrees)
ANGLES = (45, 0, 90, 135, 180, -45, -90, -135, 22, 67, 112, 157, -22, -67, -112, -157)
#: Beyond this distance (points) a thin line joins a label to its point
LEADER_FROM = 6.0
#: What a label crossing an error bar costs against one covering a label, point or legend
#: (per unit of area): allowed where nothing else is free, avoided where something is
BAR_WEIGHT = 0.1


def place_labels(ax: Any, points: Sequence[tuple[float, float]], texts: Sequence[str],
                 colours: Sequence[Any], *, errors: Sequence[float] | None = None,
                 fontsize: float = 7.0, marker_size: float = 6.0, cap_size: float = 3.0) -> list[Any]:
    """Annotate each data point ``points[k]`` of ``ax`` with ``texts[k]`` in ``colours[k]``,
    at the nearest offset (of :data:`RADII` x :data:`ANGLES`) where its box overlaps no label
    placed before, no point (a ``marker_size``-point square), no legend of the axes and no
    error bar (``errors[k]``: half its length in data units, ``cap_size`` points either
    side; crossing one is allowed where nothing else is free, at :data:`BAR_WEIGHT`), and
    stays inside the axes; a line joins a label set further than :data:`LEADER_FROM`. Where
    no offset is free, the least overlapping one. The figure's layout is drawn first and the
    labels are left out of it, so the boxes measured here are the boxes saved; each label is
    backed in white, so that a bar behind it does not cross its digits. Returns the
    annotations, in the order of ``points``."""
    figure = ax.figure
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    scale = figure.dpi / 72.0  # pixels per point
    data = np.asarray(points, dtype=float).reshape(-1, 2)
    anchors = ax.transData.transform(data)
    half = marker_size * scale / 2
    obstacles = [(x - half, y - half, x + half, y + half) for x, y in anchors]
    obstacles += [_box(legend.get_window_extent(renderer)) for legend in [ax.get_legend()] if legend]
    bars = []
    for (x, y), error in zip(data, errors if errors is not None else []):
        if np.isfinite(error) and error > 0:
            (x0, y0), (x1, y1) = ax.transData.transform([(x, y - error), (x, y + error)])
            bars.append((x0 - cap_size * scale, y0, x1 + cap_size * scale, y1))
    frame = _box(ax.get_window_extent(renderer))
    placed: list[tuple[float, float, float, float]] = []
    annotations = []
    for (x, y), text, colour in zip(anchors, texts, colours):
        probe = figure.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        width, height = extent.width + 2 * scale, extent.height + 1.5 * scale  # and its backing
        best, best_cost = None, math.inf
        for radius in RADII:
            for angle in ANGLES:
                dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                cx = x + dx * (radius * scale + width / 2)
                cy = y + dy * (radius * scale + height / 2)
                box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
                cost = sum(_overlap(box, other) for other in placed + obstacles)
                cost += BAR_WEIGHT * sum(_overlap(box, bar) for bar in bars)
                cost += _outside(box, frame) * 10
                if cost < best_cost:
                    best, best_cost = (box, radius, cx, cy), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        box, radius, cx, cy = best
        leader = {"arrowprops": {"arrowstyle": "-", "color": colour, "linewidth": 0.5,
                                 "shrinkA": 1, "shrinkB": marker_size / 2}} if radius > LEADER_FROM else {}
        annotation = ax.annotate(text, xy=ax.transData.inverted().transform((x, y)),
                                 xytext=((cx - x) / scale, (cy - y) / scale),
                                 textcoords="offset points", fontsize=fontsize, color=colour,
                                 ha="center", va="center", annotation_clip=False, zorder=4,
                                 bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                       "edgecolor": "none", "alpha": 0.85}, **leader)
        annotation.set_in_layout(False)
        placed.append(box)
        annotations.append(annotation)
    return annotations


def _box(extent: Any) -> tuple[float, float, float, float]:
    return (extent.x0, extent.y0, extent.x1, extent.y1)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The area two boxes ``(x0, y0, x1, y1)`` share."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _outside(box: tuple[float, ...], frame: tuple[float, ...]) -> float:
    """The area of ``box`` outside ``frame``."""
    return (box[2] - box[0]) * (box[3] - box[1]) - _overlap(box, frame)
