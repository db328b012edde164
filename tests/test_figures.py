"""The report's figures and tables, checked as a reader would, from the figure objects of one
real grid on scikit-learn digits (2 seeds, 2 epochs per task): titles, task names, lines,
bars and colours against numbers computed here from the run files; and the held-out
per-epoch evaluation against Avalanche's own evaluator."""
from __future__ import annotations

import copy
import io
import json

import matplotlib
import numpy as np
import pytest
import torch

from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, execute_run, run_experiment
from alpha_mas_avalanche.experiment.figure_style import save_png_and_pdf
from alpha_mas_avalanche.experiment.figures import FIGURES, Figures, method_colours
from alpha_mas_avalanche.experiment.methods import REGISTRY
from alpha_mas_avalanche.experiment.records import load_records
from alpha_mas_avalanche.experiment.report import display_label
from alpha_mas_avalanche.experiment.specs import base_spec

matplotlib.use("Agg")
ORDERS = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]
TASKS = ["(1,2)", "(3,4)", "(5,6)", "(7,8)", "(9,0)"]
EPOCHS = 2


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """AlphaMAS (N, 2N) and MAS in two placements, EWC chosen on a 2-value grid, Naive,
    Joint; 2 seeds; the summary and the figure objects drawn from it."""
    out = tmp_path_factory.mktemp("figures")
    config = ExperimentConfig(
        name="figure_test", benchmark="split_digits", epochs=EPOCHS, batch_size=32,
        train_samples_per_task=60, eval_samples_per_task=40, seeds=[0, 1], grid_extensions=0,
        methods=[MethodConfig("alpha_mas_writeup", sweep={"lambda_multiplier": [1.0, 2.0]}, task_orders=ORDERS),
                 MethodConfig("mas", task_orders=ORDERS),
                 MethodConfig("ewc", select={"ewc_lambda": [10.0, 1000.0]}),
                 MethodConfig("naive"), MethodConfig("joint")],
        output_dir=str(out))
    summary = run_experiment(config)
    figures = Figures(summary)
    drawn = {name: figures.draw(name) for name in FIGURES}
    runs = load_records(out / "runs", "final__")
    yield out, summary, figures, drawn, runs
    for fig in drawn.values():
        figures.plt.close(fig)


def main_runs(runs: list[dict], label: str) -> list[dict]:
    return [r for r in runs if r["label"] == label and r["task_order"] == ORDERS[0]]


def tick_texts(ax) -> list[str]:
    """The x tick labels as set (also where shared axes hide them on inner panels)."""
    formatter = ax.xaxis.get_major_formatter()
    return [formatter(x, i) for i, x in enumerate(ax.get_xticks())]


def visible_panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]


@pytest.mark.slow
def test_every_figure_is_written_as_png_and_pdf(grid):
    out, summary, *_ = grid
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{n}{s}" for n in FIGURES for s in (".png", ".pdf"))


@pytest.mark.slow
def test_every_title_names_benchmark_scenario_seeds_and_error_bars(grid):
    *_, drawn, _ = grid
    for name, fig in drawn.items():
        title = fig._suptitle.get_text()
        assert "Split digits (scikit-learn, 8x8), task-incremental" in title, name
        if name == "accuracy_matrix":  # its cells are means: the title says so, no error bar
            assert "each cell: the mean over n = 2 seeds (no error shown" in title
        else:
            assert "mean ± 1 std over n = 2 seeds (a 95 % CI needs n ≥ 3)" in title, name


@pytest.mark.slow
def test_colours_one_per_method_same_in_every_figure_alpha_mas_warm_bounds_grey(grid):
    _, summary, figures, drawn, _ = grid
    labels = list(summary["methods"])
    display = {summary["methods"][lb]["display_label"]: lb for lb in labels}
    for name in ("heldout_accuracy_per_epoch", "forgetting_per_task"):
        legend = drawn[name].legends[0]
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            label = display[text.get_text().split(", after its last epoch")[0]]
            colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            assert matplotlib.colors.to_rgb(colour) == pytest.approx(
                matplotlib.colors.to_rgb(figures.colour[label]), abs=1e-6), (name, label)
    colours = [matplotlib.colors.to_rgb(figures.colour[lb]) for lb in labels]
    assert len(set(colours)) == len(labels)
    ramp = matplotlib.colormaps["YlOrRd"](np.linspace(0, 1, 512))[:, :3]
    for label in labels:
        distance = np.abs(ramp - matplotlib.colors.to_rgb(figures.colour[label])).sum(axis=1).min()
        method = summary["methods"][label]["method"]
        assert (distance < 0.01) == method.startswith("alpha_mas"), label
        r, g, b = matplotlib.colors.to_rgb(figures.colour[label])
        assert (r == g == b) == (method in ("naive", "joint")), label


def test_every_registry_method_gets_its_own_colour():
    labels = {REGISTRY[name].label: name for name in REGISTRY}
    colours = method_colours(labels)
    assert len({matplotlib.colors.to_rgb(c) for c in colours.values()}) == len(REGISTRY)


@pytest.mark.slow
def test_accuracy_matrix_heatmaps_show_the_runs_mean_per_cell(grid):
    _, summary, figures, drawn, runs = grid
    panels = visible_panels(drawn["accuracy_matrix"])
    labels = list(summary["methods"])
    assert [ax.get_title().replace("\n", " ") for ax in panels] == [
        summary["methods"][lb]["display_label"] for lb in labels]
    for ax, label in zip(panels, labels):
        shown = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
        matrices = [r["acc_matrix"] for r in main_runs(runs, label)]
        if label == "Joint (upper bound)":  # one evaluation after training on everything
            expected = np.full((5, 5), np.nan)
            expected[4] = np.mean([m[0] for m in matrices], axis=0) * 100
        else:
            expected = np.array([[np.mean([m[i][j] for m in matrices]) * 100 if j <= i else np.nan
                                  for j in range(5)] for i in range(5)])
        np.testing.assert_allclose(shown, expected, atol=1e-9, equal_nan=True)
        assert tick_texts(ax) == TASKS


def with_tasks(summary: dict, n_tasks: int) -> dict:
    """The summary's first method alone, on ``n_tasks`` tasks with made-up mean accuracies."""
    result = copy.deepcopy(summary)
    label = next(iter(result["methods"]))
    result["methods"] = {label: result["methods"][label]}
    result["task_names"] = [f"t{i}" for i in range(n_tasks)]
    result["main_task_order"] = list(range(n_tasks))
    result["accuracy_matrices"] = {label: {"mean": [
        [0.5 + 0.4 * j / n_tasks if j <= i else None for j in range(n_tasks)]
        for i in range(n_tasks)]}}
    return result


@pytest.mark.slow
@pytest.mark.parametrize("n_tasks, first_cell", [(5, "50.0"), (10, "50"), (20, None)])
def test_accuracy_matrix_prints_cells_only_as_precisely_as_they_fit(grid, n_tasks, first_cell):
    _, summary, figures, *_ = grid
    fig = Figures(with_tasks(summary, n_tasks)).accuracy_matrix()
    texts = [t.get_text() for t in visible_panels(fig)[0].texts]
    if first_cell is None:  # 210 cells: colours only, the title says where the numbers are
        assert texts == [] and "values in summary.json" in fig._suptitle.get_text()
    else:
        assert len(texts) == n_tasks * (n_tasks + 1) // 2 and texts[0] == first_cell
    figures.plt.close(fig)


def test_png_keeps_every_colour_step_of_a_heatmap_and_the_pdf_is_vector(tmp_path):
    """The 256-colour PNG against the RGBA render of the same figure: each of the 64 colour
    steps that the render shows is in the PNG exactly (no banding), and the other pixels
    are off by little on average."""
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"].resampled(64)
    image = ax.imshow(np.linspace(15, 100, 64 * 64).reshape(64, 64), cmap=cmap, vmin=15, vmax=100)
    fig.colorbar(image)
    ax.set_title("accuracy after each task (%)")
    for i in range(0, 64, 8):
        ax.text(i, i, f"{i:.1f}", fontsize=5, color="white")
    steps = {tuple(int(v) for v in c[:3]) for c in cmap(np.arange(64), bytes=True)}
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=100)
    reference = np.asarray(Image.open(rendered).convert("RGB"), dtype=float)
    shown = steps & {tuple(c) for c in reference.reshape(-1, 3).astype(int)}
    assert len(shown) >= 60

    written = save_png_and_pdf(fig, tmp_path / "heat", dpi=100)
    assert [p.name for p in written] == ["heat.png", "heat.pdf"]
    assert (tmp_path / "heat.pdf").read_bytes()[:5] == b"%PDF-"
    png = Image.open(tmp_path / "heat.png")
    assert png.mode == "P"
    palette = np.asarray(png.convert("RGB"), dtype=float)
    assert palette.shape == reference.shape
    assert shown <= {tuple(c) for c in palette.reshape(-1, 3).astype(int)}
    assert np.abs(palette - reference).mean() < 1.0  # grey levels of 255, per channel


def two_panels_long_names(summary: dict) -> dict:
    """The summary without Joint and Naive, with CIFAR-length task names: the 2-panel layout
    in which a figure-wide x label once touched the rotated tick labels."""
    result = copy.deepcopy(summary)
    result["methods"] = dict([(label, row) for label, row in result["methods"].items()
                              if row["method"] not in ("naive", "joint")][:2])
    result["task_names"] = ["bird/automobile", "cat/deer", "dog/frog", "horse/ship",
                            "truck/airplane"]
    return result


@pytest.mark.slow
def test_accuracy_matrix_title_names_joint_only_when_a_joint_run_is_drawn(grid):
    _, summary, figures, drawn, _ = grid
    assert "(Joint: trained on all tasks at once, last row)" in drawn["accuracy_matrix"]._suptitle.get_text()
    fig = Figures(two_panels_long_names(summary)).accuracy_matrix()
    assert len(visible_panels(fig)) == 2
    assert "Joint" not in fig._suptitle.get_text()
    figures.plt.close(fig)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["accuracy_matrix", "task_accuracy_over_sequence"])
def test_figure_wide_x_label_clears_every_tick_label(grid, name):
    _, summary, figures, drawn, _ = grid
    for fig in (drawn[name], Figures(two_panels_long_names(summary)).draw(name)):
        fig.savefig(io.BytesIO(), dpi=150, bbox_inches="tight")  # lays the figure out as saved
        renderer = fig.canvas.get_renderer()
        label_top = fig._supxlabel.get_window_extent(renderer).y1
        ticks = [t.get_window_extent(renderer).y0 for ax in visible_panels(fig)
                 for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert ticks and label_top < min(ticks), (name, label_top, min(ticks))
    figures.plt.close(fig)


@pytest.mark.slow
def test_task_accuracy_lines_follow_each_task_from_its_experience_on(grid):
    _, summary, _, drawn, runs = grid
    panels = visible_panels(drawn["task_accuracy_over_sequence"])
    labels = [lb for lb in summary["methods"] if lb != "Joint (upper bound)"]
    assert len(panels) == len(labels)
    for ax, label in zip(panels, labels):
        assert [line.get_label() for line in ax.get_lines()] == TASKS
        matrices = [r["acc_matrix"] for r in main_runs(runs, label)]
        for j, line in enumerate(ax.get_lines()):
            np.testing.assert_allclose(line.get_xdata(), np.arange(j + 1, 6))
            np.testing.assert_allclose(line.get_ydata(), [np.mean([m[i][j] for m in matrices]) * 100
                                                          for i in range(j, 5)])


@pytest.mark.slow
def test_heldout_figure_plots_validation_accuracy_per_epoch_with_task_boundaries(grid):
    _, summary, figures, drawn, runs = grid
    fig = drawn["heldout_accuracy_per_epoch"]
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]
    assert [ax.get_title() for ax in data_axes] == ["AlphaMAS", "MAS", "EWC, SI, L2"]  # families
    assert fig._supylabel.get_text() == "validation accuracy, mean over seen tasks (%)"
    assert fig._supxlabel.get_text() == "epoch over the task sequence"
    lines = {line.get_label(): line for ax in data_axes for line in ax.get_lines()}
    for label in ("AlphaMAS λ=N", "MAS (λ=1, default)"):
        record_label = label.split(" (")[0] if label.startswith("MAS") else label
        per_seed = [[np.mean(p["acc"]) for p in r["heldout_per_epoch"]]
                    for r in main_runs(runs, record_label)]
        assert len(per_seed[0]) == 5 * EPOCHS
        np.testing.assert_allclose(lines[label].get_ydata(), np.mean(per_seed, axis=0) * 100)
        np.testing.assert_allclose(lines[label].get_xdata(), np.arange(1, 5 * EPOCHS + 1))
    for ax in data_axes:  # four dotted boundaries between the five tasks of two epochs each
        boundaries = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"
                            and line.get_xdata()[0] == line.get_xdata()[-1])
        assert boundaries == [2.5, 4.5, 6.5, 8.5]
    ewc = next(lb for lb in summary["methods"] if lb.startswith("EWC"))
    assert summary["methods"][ewc]["display_label"] in lines  # baselines in their family's panel


@pytest.mark.slow
def test_heldout_points_equal_avalanche_validation_accuracy_after_each_experience():
    config = ExperimentConfig(benchmark="split_digits", epochs=2, batch_size=32,
                              train_samples_per_task=60, eval_samples_per_task=40)
    spec = base_spec(config, 0, ORDERS[0], method="mas", params={}, eval_stream="valid",
                     phase="select")
    record = execute_run(spec)
    points = record["heldout_per_epoch"]
    assert [p["epoch"] for p in points] == list(range(10))
    assert [p["experience"] for p in points] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for i, row in enumerate(record["acc_matrix"]):  # Avalanche's evaluator on the valid stream
        last = points[2 * i + 1]["acc"]
        assert last == pytest.approx(row[: i + 1], abs=1e-12)


@pytest.mark.slow
def test_heldout_evaluation_leaves_the_training_state_untouched():
    from avalanche.training import Naive

    from alpha_mas_avalanche.data import make_benchmark
    from alpha_mas_avalanche.experiment.heldout import HeldOutAccuracy
    from alpha_mas_avalanche.models import make_model

    bm = make_benchmark("split_digits", seed=0, train_samples_per_task=40, eval_samples_per_task=20)
    model = make_model("mlp", input_shape=(1, 8, 8))
    plugin = HeldOutAccuracy(bm.valid_stream, batch_size=16)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     train_mb_size=16, train_epochs=1, plugins=[plugin])
    strategy.train(bm.train_stream[0], num_workers=0)
    model.train()
    rng, params = torch.get_rng_state(), [p.detach().clone() for p in model.parameters()]
    plugin.after_training_epoch(strategy)
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert len(plugin.points) == 2 and plugin.points[-1]["acc"] == plugin.points[0]["acc"]


@pytest.mark.slow
def test_max_forgetting_vs_lambda_line_and_mas_reference(grid):
    _, summary, figures, drawn, _ = grid
    ax = drawn["max_forgetting_vs_lambda"].axes[0]
    line = next(line for line in ax.get_lines() if len(line.get_xdata()) == 2)  # through the λs
    np.testing.assert_allclose(line.get_xdata(), [1.0, 2.0])
    np.testing.assert_allclose(line.get_ydata(), [
        summary["methods"][lb]["max_forgetting_ref"]["mean"] * 100 for lb in ("AlphaMAS λ=N", "AlphaMAS λ=2N")])
    mas = next(line for line in ax.get_lines() if line.get_label() == "MAS (λ=1, default): mean")
    assert mas.get_ydata()[0] == pytest.approx(summary["methods"]["MAS"]["max_forgetting_ref"]["mean"] * 100)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["N", "2N"]


@pytest.mark.slow
def test_order_sensitivity_offsets_positions_and_keeps_the_table_order(grid):
    _, summary, _, drawn, _ = grid
    fig = drawn["order_sensitivity"]
    left = fig.axes[0]
    xs = [container.lines[0].get_xdata() for container in left.containers]
    assert len(xs) == 3
    offsets = [x - np.array([1, 5]) for x in xs]
    assert all(np.allclose(o, o[0]) for o in offsets) and len({round(o[0], 6) for o in offsets}) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "AlphaMAS λ=N", "AlphaMAS λ=2N", "MAS (λ=1, default)"]
    assert left.get_xlabel() == "position of task (1,2) in the sequence (points only where it was run)"


@pytest.mark.slow
def test_forgetting_per_task_bars_per_method_and_task(grid):
    _, summary, _, drawn, runs = grid
    ax = drawn["forgetting_per_task"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == TASKS
    assert len(ax.patches) == 5 * len(summary["methods"])


@pytest.mark.slow
def test_table_bounds_last_chosen_value_std_note_and_small_tables(grid):
    out, summary, _, _, runs = grid
    table = (out / "table.md").read_text()
    lines = table.splitlines()
    main = lines[4: lines.index("", 4)]
    rows = [line.split(" | ")[0].removeprefix("| ") for line in main]
    chosen = json.loads((out / "selection.json").read_text())["ewc"]["chosen"]["ewc_lambda"]
    assert rows == ["AlphaMAS λ=N", "AlphaMAS λ=2N", "MAS (λ=1, default)",
                    f"EWC (λ={chosen:g} chosen, at grid edge)", "*bounds*", "Naive (fine-tuning)",
                    "Joint (upper bound)"]
    assert "Mean ± one standard deviation over n seeds (n = 2" in table
    assert "**Order sensitivity: task (1,2) moved from first to last place**" in table
    importance = [line for line in table.splitlines() if line.startswith("| AlphaMAS λ=N |")][-1]
    totals = [r["importance_totals_per_experience"][-1] for r in main_runs(runs, "AlphaMAS λ=N")]
    first = float(importance.split(" | ")[1])
    assert first == pytest.approx(np.mean([t[0] for t in totals]), rel=5e-3)


def test_error_text_of_a_partial_grid_says_each_row_follows_its_own_n():
    from alpha_mas_avalanche.experiment.figure_style import legend_error_text
    from alpha_mas_avalanche.experiment.figures import error_text

    assert error_text(5, 5) == error_text(5) == "mean ± 95 % CI over n = 5 seeds"
    assert error_text(1, 2) == ("1-2 seeds per row: mean ± 95 % CI where n ≥ 3, ± 1 std "
                                "where n = 2, no bar where n = 1")
    # the deciding rows' 10 seeds beside the baselines' 5: every bar a 95 % CI
    assert error_text(5, 10) == "5-10 seeds per row: mean ± 95 % CI"
    assert legend_error_text(5, 10) == "± 95 % CI; n = 5-10 seeds per row"
    assert legend_error_text(2, 5) == "± 95 % CI (n ≥ 3) or ± 1 std (n = 2); n = 2-5 seeds per row"


def test_row_labels_say_which_hyperparameter_ran():
    assert display_label("EWC", "ewc", {"ewc_lambda": 1e4},
                         {"chosen": {"ewc_lambda": 1e4}}) == "EWC (λ=1e4 chosen)"
    assert display_label("EWC", "ewc", {"ewc_lambda": 1e7}, {
        "chosen": {"ewc_lambda": 1e7}, "at_grid_edge": True}) == "EWC (λ=1e7 chosen, at grid edge)"
    assert display_label("SI", "si", {"si_lambda": 1.0}, {
        "chosen": {"si_lambda": 1.0}, "no_effect": True}) == (
        "SI (λ=1 used; no effect: every grid value gave the same validation score)")
    assert display_label("MAS (Avalanche)", "avalanche_mas", {}, None) == "MAS (Avalanche; λ=1, default)"
    assert display_label("EBLL", "ebll", {}, None) == "EBLL"
    # a value set in the config is "fixed", not the registry default; 3 significant digits
    assert display_label("Online EWC", "online_ewc", {"ewc_lambda": 38850.0}, None) == (
        "Online EWC (λ=3.88e4, fixed)")
    assert display_label("EWC", "ewc", {"ewc_lambda": 1e6}, None) == "EWC (λ=1e6, fixed)"


def test_error_bars_are_ci_for_three_seeds_std_for_two_and_absent_for_one():
    """A one-seed row draws no bar and no cap (NaN), as the titles say: not a zero-width one."""
    from alpha_mas_avalanche.experiment.figures import error_of, errors_of

    assert error_of({"mean": 0.5, "std": 0.1, "ci95": 0.3, "n": 3}) == 0.3
    assert error_of({"mean": 0.5, "std": 0.1, "ci95": 0.9, "n": 2}) == 0.1
    assert np.isnan(error_of({"mean": 0.5, "std": 0.0, "ci95": None, "n": 1}))
    assert np.isnan(error_of({"mean": None, "std": None, "ci95": None, "n": 0}))
    assert errors_of({"std": [0.1, 0.2], "ci95": [0.4, None], "n": 3}).tolist()[0] == 0.4
    assert np.isnan(errors_of({"std": [0.1, 0.2], "ci95": [0.4, None], "n": 3})[1])
    assert np.isnan(errors_of({"std": [[0.0, 0.0]], "ci95": [[None, None]], "n": 1})).all()
    fig, ax = matplotlib.pyplot.subplots()
    bars = ax.bar([0, 1], [1.0, 2.0], yerr=[error_of({"std": 0.0, "n": 1}), 0.3], capsize=2)
    caps = bars.errorbar.lines[1]
    drawn = [np.ma.filled(np.ma.asarray(c.get_ydata(), dtype=float), np.nan) for c in caps]
    assert [np.isfinite(y).sum() for y in drawn] == [1, 1]  # only the 2nd bar's caps
    matplotlib.pyplot.close(fig)
