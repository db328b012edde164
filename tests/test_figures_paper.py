"""The paper figures (``--figures paper``) on a summary built by hand: the methods they draw,
one colour and one marker each, 3.3 in wide with no text under 7 pt and none cut off; the
registry carrying each method's style; zero-length error bars drawn; long-stream tasks named
by permutation or rotation."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from alpha_mas_avalanche.cli import build_parser
from alpha_mas_avalanche.experiment import figure_style
from alpha_mas_avalanche.experiment.figure_style import task_axis_name
from alpha_mas_avalanche.experiment.figures import Figures
from alpha_mas_avalanche.experiment.methods import REGISTRY
from alpha_mas_avalanche.experiment.paper_figures import (
    COLUMN_WIDTH,
    FONT_SIZE,
    PAPER_FIGURES,
    PaperFigures,
    paper_rows,
    write_paper_set,
)
from alpha_mas_avalanche.experiment.report.labels import task_name

matplotlib.use("Agg")
EVERY = [("AlphaMAS", "alpha_mas"), ("AlphaMAS λ=N", "alpha_mas_writeup"),
         ("AlphaMAS λ=2N", "alpha_mas_writeup"), ("AlphaMAS (per-task)", "alpha_mas_per_task"),
         ("MAS", "mas"), ("MAS (Avalanche)", "avalanche_mas"), ("EWC", "ewc"),
         ("Online EWC", "online_ewc"), ("SI", "si"), ("SI (Avalanche)", "si_avalanche"),
         ("L2", "l2"), ("LwF", "lwf"), ("EBLL", "ebll"), ("IMM", "imm"),
         ("Naive (fine-tuning)", "naive"), ("Joint (upper bound)", "joint")]
PAPER = ["AlphaMAS", "AlphaMAS (per-task)", "MAS", "EWC", "SI", "LwF", "Naive (fine-tuning)",
         "Joint (upper bound)"]


def stat(mean: float, std: float = 0.02, n: int = 5) -> dict:
    return {"mean": mean, "std": std, "ci95": 1.24 * std, "n": n}


def summary(rows: list[tuple[str, str]], n_tasks: int = 5, benchmark: str = "split_mnist",
            zero_std: bool = False) -> dict:
    """A report summary with every field the figures read: row k forgets k % per task."""
    rng = np.random.default_rng(0)
    methods, matrices, curves, sensitivity = {}, {}, {}, {}
    for k, (label, method) in enumerate(rows):
        methods[label] = {"method": method, "display_label": label, "params": {},
                          "final_avg_acc": stat(0.9 - 0.01 * k),
                          "avg_forgetting_ref": stat(0.01 * k),
                          "avg_forgetting_avalanche": stat(0.015 * k),
                          "max_forgetting_ref": stat(0.02 * k),
                          "forgetting_ref_per_pair": {str(p): stat(0.01 * k) for p in range(n_tasks)}}
        mean = [[0.99 - 0.01 * k * (i - j) if j <= i else None for j in range(n_tasks)]
                for i in range(n_tasks)]
        matrices[label] = {"mean": mean, "std": [[0.01] * n_tasks] * n_tasks,
                           "ci95": [[0.012] * n_tasks] * n_tasks, "n": 5}
        epochs = 2 * n_tasks if method != "joint" else 2
        curves[label] = {"mean": list(0.9 - 0.01 * rng.random(epochs)), "std": [0.01] * epochs,
                         "ci95": [0.012] * epochs, "n": 5, "kind": "validation",
                         "experience": [e // 2 for e in range(epochs)]}
        if method in ("alpha_mas", "mas"):
            sensitivity[label] = {"per_placement": {
                str(p): {"final_acc": stat(0.95, 0.0 if zero_std and p == 3 else 0.01)}
                for p in range(1, n_tasks + 1)}}
    return {"benchmark": "Split MNIST", "benchmark_key": benchmark, "scenario": "task",
            "n_seeds": 5, "n_seeds_per_row": [5, 5],
            "task_names": [task_name(benchmark, p) for p in range(n_tasks)],
            "main_task_order": list(range(n_tasks)), "moved_pair": 0, "methods": methods,
            "accuracy_matrices": matrices, "heldout_curves": curves,
            "order_sensitivity": sensitivity}


@pytest.fixture(scope="module")
def drawn() -> dict:
    figures = PaperFigures(summary(EVERY))
    return {name: figures.draw(name) for name in PAPER_FIGURES}


def test_paper_rows_are_one_per_slot_of_the_methods_present():
    assert paper_rows(summary(EVERY)) == PAPER
    # no tuned AlphaMAS: the write-up's first row (λ = N); Avalanche's SI is no stand-in for SI
    older = [r for r in EVERY if r[1] not in ("alpha_mas", "si", "joint")]
    assert paper_rows(summary(older)) == ["AlphaMAS λ=N", "AlphaMAS (per-task)", "MAS", "EWC",
                                          "LwF", "Naive (fine-tuning)"]
    assert paper_rows(summary([("Online EWC", "online_ewc"), ("L2", "l2")])) == []
    assert PaperFigures(summary([("L2", "l2")])).draw("accuracy_over_tasks") is None


def test_each_paper_method_has_its_own_colour_marker_and_legend_entry(drawn):
    ax = drawn["accuracy_over_tasks"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert list(lines) == PAPER
    curves = [lines[lb] for lb in PAPER if lb != "Joint (upper bound)"]  # Joint: a level
    markers = [line.get_marker() for line in curves]
    assert len(set(markers)) == len(markers) and "None" not in markers
    colours = [np.array(matplotlib.colors.to_rgb(lines[lb].get_color())) for lb in PAPER]
    # told apart: no two closer than 0.2 in RGB (EWC / online EWC shades are 0.36 apart,
    # and never both drawn)
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(colours, 2)) > 0.2
    legend = drawn["accuracy_over_tasks"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == PAPER
    dots = drawn["final_accuracy_and_forgetting"].axes[0]
    assert [t.get_text() for t in dots.get_yticklabels()] == PAPER
    assert [c.lines[0].get_marker() for c in dots.containers][:-1] == markers


@pytest.mark.parametrize("name", PAPER_FIGURES)
def test_paper_figures_are_a_column_wide_with_no_text_under_7pt_and_none_cut_off(drawn, name):
    fig = drawn[name]
    assert fig.get_figwidth() == pytest.approx(COLUMN_WIDTH)
    fig.draw_without_rendering()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert texts
    for text in texts:
        assert text.get_fontsize() >= FONT_SIZE, text.get_text()
    drawn_extent = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, what is drawn
    width, height = fig.get_size_inches()
    assert drawn_extent.x0 >= -0.01 and drawn_extent.y0 >= -0.01
    assert drawn_extent.x1 <= width + 0.01 and drawn_extent.y1 <= height + 0.01


def test_the_paper_set_is_written_at_print_size_under_figures_paper(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(summary(EVERY)))
    written = write_paper_set(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}{s}" for n in PAPER_FIGURES
                                                     for s in (".png", ".pdf"))
    assert all(p.parent == tmp_path / "figures" / "paper" for p in written)
    for png in (p for p in written if p.suffix == ".png"):
        assert Image.open(png).size[0] == round(COLUMN_WIDTH * 300)  # 300 dpi, not cropped
    assert write_paper_set(tmp_path / "no_report") == []


def test_forgetting_panel_shows_the_tested_forgetting_and_no_joint_point(drawn):
    """The right panel plots forgetting after training (the quantity the tests compare; the
    reference definition's difference would repeat the final accuracy's), none for Joint."""
    panel = drawn["final_accuracy_and_forgetting"].axes[1]
    assert panel.get_xlabel().replace("\n", " ").startswith("forgetting after training")
    points = {round(c.lines[0].get_ydata()[0]): c.lines[0].get_xdata()[0] for c in panel.containers}
    slots = {k: PAPER.index(label) for k, (label, _) in enumerate(EVERY) if label in PAPER}
    expected = {slots[k]: 1.5 * k for k, (_, method) in enumerate(EVERY)
                if k in slots and method != "joint"}
    assert points.keys() == expected.keys()
    assert all(points[y] == pytest.approx(x) for y, x in expected.items())


def test_figures_flag_defaults_to_the_full_set():
    assert build_parser().parse_args([]).figures == "full"
    assert build_parser().parse_args(["--report-only", "--figures", "paper"]).figures == "paper"


def cell_texts(fig) -> list:
    return [t for ax in fig.axes for t in ax.texts]


def test_accuracy_matrix_numbers_cells_only_where_the_number_fits(drawn):
    fig = drawn["accuracy_matrix"]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["AlphaMAS", "AlphaMAS (per-task)", "MAS",
                                                 "Naive (fine-tuning)"]
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax in panels:
        assert len(ax.texts) == 15  # five tasks: the lower triangle
        cell = ax.get_window_extent(renderer).width / 5
        for text in ax.texts:
            assert text.get_fontsize() >= FONT_SIZE
            assert text.get_window_extent(renderer).width < cell
    assert panels[0].texts[0].get_text() == "99"
    title = fig.get_suptitle().replace("\n", " ")  # means only: no error bar named
    assert "CI" not in title and title.endswith("mean of n = 5 seeds")
    many = PaperFigures(summary(EVERY, n_tasks=20, benchmark="permuted_mnist_20")).draw(
        "accuracy_matrix")
    assert cell_texts(many) == []


def test_a_zero_spread_is_drawn_as_a_bar_across_the_point():
    result = summary([("AlphaMAS", "alpha_mas"), ("MAS", "mas")], zero_std=True)
    for fig in (PaperFigures(result).draw("order_sensitivity"), Figures(result).order_sensitivity()):
        caps = {id(cap) for container in fig.axes[0].containers for cap in container.lines[1]}
        bars = [line for line in fig.axes[0].get_lines()
                if line.get_marker() == "_" and id(line) not in caps]
        assert len(bars) == 2  # one per method, at position 3 only
        for bar in bars:
            assert len(bar.get_xdata()) == 1 and round(bar.get_xdata()[0]) == 3
            assert bar.get_ydata()[0] == pytest.approx(95.0)
            assert bar.get_markersize() > 4.5  # wider than the point it crosses
    legend = Figures(result).order_sensitivity().legends[0].get_title().get_text()
    assert "zero spread" in legend
    plain = Figures(summary([("MAS", "mas")])).order_sensitivity()
    assert "zero spread" not in plain.legends[0].get_title().get_text()


def test_long_stream_tasks_are_named_by_permutation_or_rotation():
    assert [task_name("permuted_mnist_20", k) for k in (0, 19)] == ["perm. 1", "perm. 20"]
    assert [task_name("rotated_mnist_20", k) for k in (0, 1, 19)] == ["0°", "9°", "171°"]
    assert task_name("split_mnist", 0) == "(1,2)"
    assert task_axis_name("permuted_mnist_20") == "task (pixel permutation)"
    assert task_axis_name("rotated_mnist") == "task (rotation angle)"
    assert task_axis_name("split_cifar10_jpeg") == "task (classes)"
    fig = Figures(summary([("MAS", "mas")], n_tasks=20, benchmark="permuted_mnist_20")).accuracy_matrix()
    assert fig.get_supxlabel() == "task (pixel permutation), in training order"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["perm. 1", "perm. 2"]


def test_every_registry_entry_carries_its_style_and_figure_style_names_no_method():
    markers = [entry.marker for entry in REGISTRY.values()]
    assert len(set(markers)) == len(markers)
    for entry in REGISTRY.values():
        assert entry.colour, entry.name
        assert entry.colour in matplotlib.colormaps or matplotlib.colors.is_color_like(entry.colour)
    source = Path(figure_style.__file__).read_text()
    assert not [name for name in REGISTRY if f'"{name}"' in source or f"'{name}'" in source]
    colours = figure_style.method_colours({"EWC": "ewc", "Online EWC": "online_ewc"})
    assert matplotlib.colors.to_hex(colours["EWC"]) == REGISTRY["ewc"].colour
    assert matplotlib.colors.to_hex(colours["Online EWC"]) == REGISTRY["online_ewc"].colour
