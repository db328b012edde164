"""The comparison harness on real data (digits, small MNIST slices)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alpha_mas_avalanche.cli import build_parser, main, preset
from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, execute_run, run_experiment
from alpha_mas_avalanche.experiment.figures import FIGURES
from alpha_mas_avalanche.experiment.methods import REGISTRY, MethodEntry, build_method, register
from alpha_mas_avalanche.experiment.report import mean_std_ci, paired_comparisons, runs_table
from alpha_mas_avalanche.experiment.selection import selection_specs
from alpha_mas_avalanche.experiment.executors import sequential_executor
from alpha_mas_avalanche.experiment.specs import final_specs, single_task_specs
from alpha_mas_avalanche.experiment.records import load_records
from wandb_records import offline_history, offline_records

REPO = Path(__file__).resolve().parents[1]
TINY = dict(benchmark="split_digits", epochs=1, batch_size=32, train_samples_per_task=60,
            eval_samples_per_task=40)


def tiny_config(tmp_path: Path, methods, **changes) -> ExperimentConfig:
    return ExperimentConfig(**{**TINY, "methods": methods, "output_dir": str(tmp_path / "out"),
                               **changes})


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A finished tiny grid: AlphaMAS (two lambdas, two placements), MAS, Naive; 2 seeds."""
    out = tmp_path_factory.mktemp("grid")
    config = tiny_config(out, [
        MethodConfig("alpha_mas_writeup", sweep={"lambda_multiplier": [1.0, 2.0]},
                     task_orders=[[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]),
        MethodConfig("mas", task_orders=[[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]),
        MethodConfig("naive"),
    ], seeds=[0, 1])
    summary = run_experiment(config)
    return config, summary, Path(config.output_dir)


def _load(folder: Path) -> list[dict]:
    return load_records(folder)


@pytest.mark.slow
def test_harness_writes_table_figures_and_provenance(grid):
    config, summary, out = grid
    assert len(_load(out / "runs")) == 2 * 2 * 2 + 2 * 2 + 2
    table = (out / "table.md").read_text()
    for label in ("AlphaMAS λ=N", "AlphaMAS λ=2N", "MAS (λ=1, default)", "Naive (fine-tuning)"):
        assert f"| {label} |" in table
    for name in FIGURES:  # their content: tests/test_figures.py
        png = (out / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert ExperimentConfig.load(out / "config.yaml") == config
    environment = json.loads((out / "environment.json").read_text())
    assert environment["packages"]["avalanche-lib"] == "0.6.0"
    assert "git_commit" in environment
    for name in ("runs.csv", "per_task.csv", "summary.csv", "summary.json"):
        text = (out / name).read_text()
        assert "NaN" not in text and "Infinity" not in text and "nan" not in text.lower().split(",")


@pytest.mark.slow
def test_reference_forgetting_equals_hand_computation(grid):
    config, summary, out = grid
    singles = {(s["seed"], s["pair"]): s["acc"] for s in _load(out / "single_task")}
    assert len(singles) == 2 * 5
    per_task = pd.read_csv(out / "per_task.csv")
    hand_avg = {}
    for run in _load(out / "runs"):
        last_row = run["acc_matrix"][-1]  # accuracies logged after the last task
        forgetting = {pair: singles[(run["seed"], pair)] - last_row[pos]
                      for pos, pair in enumerate(run["task_order"])}
        order = "".join(map(str, run["task_order"]))
        for pair, value in forgetting.items():
            row = per_task[(per_task.label == run["label"]) & (per_task.seed == run["seed"])
                           & (per_task.task_order.astype(str).str.zfill(5) == order)
                           & (per_task.pair == pair)]
            assert row.forgetting_ref.item() == pytest.approx(value, abs=1e-12)
        if order == "01234":
            hand_avg.setdefault(run["label"], []).append(sum(forgetting.values()) / 5)
    for label, values in hand_avg.items():
        reported = summary["methods"][label]["avg_forgetting_ref"]
        mean = sum(values) / 2
        std = math.sqrt(sum((v - mean) ** 2 for v in values))  # ddof=1 with n=2
        assert reported["mean"] == pytest.approx(mean, abs=1e-12)
        assert reported["ci95"] == pytest.approx(12.706204736174707 * std / math.sqrt(2))


@pytest.mark.slow
def test_avalanche_metrics_agree_with_the_accuracy_matrix(grid):
    _, _, out = grid
    for run in _load(out / "runs"):
        matrix = run["acc_matrix"]
        drops = [matrix[j][j] - matrix[-1][j] for j in range(4)]
        assert run["avalanche_forgetting"] == pytest.approx(np.mean(drops), abs=1e-12)
        assert run["avalanche_bwt"] == pytest.approx(-np.mean(drops), abs=1e-12)
        assert run["final_avg_acc"] == pytest.approx(np.mean(matrix[-1]), abs=1e-12)


@pytest.mark.slow
def test_order_sensitivity_and_alphas(grid):
    _, summary, out = grid
    sensitivity = summary["order_sensitivity"]
    assert set(sensitivity) == {"AlphaMAS λ=N", "AlphaMAS λ=2N", "MAS"}
    runs = [r for r in _load(out / "runs") if r["label"] == "MAS"]
    by_position = {}
    for run in runs:
        by_position.setdefault(run["task_order"].index(0) + 1, []).append(
            run["final_acc_by_pair"]["0"])
    means = {p: np.mean(v) for p, v in by_position.items()}
    assert sensitivity["MAS"]["final_acc_spread"] == pytest.approx(max(means.values()) - min(means.values()))
    for run in _load(out / "runs"):
        if run["method"] == "alpha_mas_writeup":
            lam = run["params"]["lambda_multiplier"] * 5
            assert [len(a) for a in run["alphas_per_experience"]] == [1, 2, 3, 4, 5]
            assert all(sum(a) == pytest.approx(lam) for a in run["alphas_per_experience"])
            assert len(run["penalty_per_epoch"]) == 5 and run["penalty_per_epoch"][0] == 0.0
            assert run["penalty_per_epoch"][-1] > 0


@pytest.mark.slow
def test_paired_comparison_is_scipy_paired_t_test(grid):
    _, summary, out = grid
    runs_df, _ = runs_table(_load(out / "runs"), _load(out / "single_task"))
    result = next(c for c in summary["paired_comparisons"]
                  if c["label"] == "AlphaMAS λ=2N" and c["metric"] == "avg_forgetting_avalanche")
    main = runs_df[runs_df.task_order == "01234"]
    a = main[main.label == "AlphaMAS λ=2N"].sort_values("seed").avg_forgetting_avalanche.to_numpy()
    b = main[main.label == "MAS"].sort_values("seed").avg_forgetting_avalanche.to_numpy()
    d = a - b
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert result["t_statistic"] == pytest.approx(t_hand)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t_hand), len(d) - 1))
    # the page's family: 3 rows (two AlphaMAS, Naive) x 4 quantities + 2 placement spreads
    assert result["family_size"] == 3 * 4 + 2
    ranked = sorted(c["p_value"] for c in summary["paired_comparisons"]
                    + summary["placement_spread_comparisons"] if c["p_value"] is not None)
    assert result["p_holm"] >= min(1.0, len(ranked) * ranked[0]) - 1e-12
    # table.md prints the same difference, p and Holm p in its tests' table
    row = next(line for line in (out / "table.md").read_text().splitlines()
               if line.startswith("| AlphaMAS λ=2N | avg forgetting |"))
    assert f"| {100 * d.mean():+.2f} | {result['p_value']:.3f} |" in row
    assert f"**{result['verdict']}**" in row


@pytest.mark.slow
def test_paired_comparison_covers_every_alpha_mas_method(grid):
    """The per-task ablation (and any ``alpha_mas*`` variant) is compared with MAS too."""
    _, _, out = grid
    runs_df, _ = runs_table(_load(out / "runs"), _load(out / "single_task"))
    ablation = runs_df[runs_df.label == "AlphaMAS λ=2N"].copy()
    ablation["method"], ablation["label"] = "alpha_mas_per_task", "ablation"
    both = pd.concat([runs_df, ablation], ignore_index=True)
    compared = {c["label"]: c for c in paired_comparisons(both, "01234")
                if c["metric"] == "final_avg_acc"}
    assert set(compared) == {"AlphaMAS λ=N", "AlphaMAS λ=2N", "ablation", "Naive (fine-tuning)"}
    assert compared["ablation"]["mean_difference"] == compared["AlphaMAS λ=2N"]["mean_difference"]


@pytest.mark.slow
def test_placement_spread_is_paired_per_seed_and_stated_as_a_claim(grid):
    """Per seed, the moved pair's final-accuracy spread over placements, by hand; AlphaMAS vs
    MAS by scipy's paired t-test; the claim sentence in table.md carries the same numbers."""
    _, summary, out = grid
    runs = _load(out / "runs")

    def spread(label, seed):
        accs = [r["final_acc_by_pair"]["0"] for r in runs if r["label"] == label and r["seed"] == seed]
        assert len(accs) == 2  # two placements
        return max(accs) - min(accs)

    ours = np.array([spread("AlphaMAS λ=2N", s) for s in (0, 1)])
    base = np.array([spread("MAS", s) for s in (0, 1)])
    result = next(c for c in summary["placement_spread_comparisons"] if c["label"] == "AlphaMAS λ=2N")
    assert result["n_seeds"] == 2
    assert result["label_mean"] == pytest.approx(ours.mean())
    assert result["baseline_mean"] == pytest.approx(base.mean())
    assert result["mean_difference"] == pytest.approx((ours - base).mean())
    if np.ptp(ours - base) > 0:
        assert result["p_value"] == pytest.approx(stats.ttest_rel(ours, base).pvalue)
    sentence = next(c for c in summary["seed_claims"]
                    if c.startswith("AlphaMAS λ=2N has less spread over placements"))
    assert f"difference {100 * result['mean_difference']:+.2f} pp" in sentence
    assert f"- {sentence}" in (out / "table.md").read_text()


def test_claim_verdicts_follow_the_verdicts():
    from alpha_mas_avalanche.experiment.report.claims import claim_verdict

    def c(verdict):
        return {"verdict": verdict}

    assert claim_verdict([c("better"), c("better")]) == "confirmed"
    assert claim_verdict([c("better"), c("inconclusive")]) == "not confirmed"
    assert claim_verdict([c("better"), c("equivalent")]) == "not confirmed"
    assert claim_verdict([c("better"), c("worse")]) == "contradicted"
    assert claim_verdict([]) == "not confirmed"


def test_mean_std_ci_by_hand():
    out = mean_std_ci([0.5, 0.7, 0.9, float("nan"), None])
    assert out["n"] == 3 and out["mean"] == pytest.approx(0.7)
    assert out["std"] == pytest.approx(0.2)
    assert out["ci95"] == pytest.approx(4.302652729749464 * 0.2 / math.sqrt(3))
    assert mean_std_ci([1.0]) == {"mean": 1.0, "std": None, "ci95": None, "n": 1}


@pytest.mark.slow
def test_same_seed_same_numbers():
    config = ExperimentConfig(**TINY, methods=[MethodConfig("alpha_mas_writeup"), MethodConfig("ewc")])
    for spec in final_specs(config)[::-1]:  # ends with alpha_mas, compared below
        first, second = execute_run(spec), execute_run(spec)
        for record in (first, second):
            record.pop("wall_time_s"), record.pop("train_time_s")
        assert first == second
    other = final_specs(ExperimentConfig(**TINY, seeds=[1], methods=[MethodConfig("alpha_mas_writeup")]))
    assert execute_run(other[0])["acc_matrix"] != first["acc_matrix"]


@pytest.mark.slow
def test_selection_uses_only_the_validation_stream(tmp_path):
    config = tiny_config(tmp_path, [MethodConfig("ewc", select={"ewc_lambda": [1.0, 1e4]})])
    specs = selection_specs(config)
    assert [s.eval_stream for s in specs] == ["valid", "valid"]
    summary = run_experiment(config, report=False)
    chosen = summary["selection"]["ewc"]
    best = max(chosen["valid_acc"], key=chosen["valid_acc"].get)
    assert chosen["chosen"] == json.loads(best)
    final = final_specs(config, summary["selection"])
    assert final[0].params == chosen["chosen"] and final[0].eval_stream == "test"
    assert json.loads((Path(config.output_dir) / "selection.json").read_text()) == summary["selection"]


def read_wandb_summary(run_folder: Path) -> dict:
    """The run's summary from disk: ``files/wandb-summary.json`` when W&B wrote one, else
    the summary records of the run's transaction log."""
    summary_file = run_folder / "files" / "wandb-summary.json"
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    summary = {}
    for record in offline_records(run_folder):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary


def run_header(run_folder: Path):
    """The ``run`` record of an offline run: its display name and tags."""
    return next(r.run for r in offline_records(run_folder) if r.WhichOneof("record_type") == "run")


@pytest.mark.slow
def test_wandb_offline_run_folder_holds_the_summary_keys(tmp_path):
    config = tiny_config(tmp_path, [MethodConfig("alpha_mas_writeup")], wandb="offline", name="wb_test",
                         epochs=2)
    summary = run_experiment(config)
    folders = sorted((Path(config.output_dir) / "wandb").glob("offline-run-*"))
    assert len(folders) == 2  # the run + the experiment summary
    summaries = [read_wandb_summary(folder) for folder in folders]
    run_summary = next(s for s in summaries if "final_avg_acc" in s)
    run_folder = folders[[("final_avg_acc" in s) for s in summaries].index(True)]
    record = _load(Path(config.output_dir) / "runs")[0]
    header = run_header(run_folder)
    assert header.display_name == "AlphaMAS λ=N · seed 0 · order 01234"
    assert list(header.tags) == ["alpha_mas_writeup", "lambda_multiplier=1", "seed=0", "order=01234",
                                 "split_digits", "task-incremental"]
    history = offline_history(run_folder)
    # the test accuracy of every seen task after each experience, against the experience step
    evals = [row for row in history if "eval/acc/mean" in row]
    assert [row["experience"] for row in evals] == [0, 1, 2, 3, 4]
    for i, row in enumerate(evals):
        assert [row[f"eval/acc/task_{k}"] for k in range(i + 1)] == pytest.approx(record["acc_matrix"][i][: i + 1])
        assert f"eval/acc/task_{i + 1}" not in row and row["_step"] == 2 * i + 1  # last epoch
    # the held-out accuracy of every seen task after each epoch, against the epoch step
    heldout = [row for row in history if "heldout/acc/mean" in row]
    assert [row["_step"] for row in heldout] == list(range(10))
    for row, point in zip(heldout, record["heldout_per_epoch"]):
        assert [row[f"heldout/acc/task_{k}"] for k in range(len(point["acc"]))] == pytest.approx(point["acc"])
        assert row["heldout/acc/mean"] == pytest.approx(np.mean(point["acc"]))
    assert run_summary["final_avg_acc"] == pytest.approx(record["final_avg_acc"])
    assert run_summary["alpha/task4"] == pytest.approx(record["alphas_per_experience"][-1][4])
    assert run_summary["train/penalty"] == pytest.approx(record["penalty_per_epoch"][-1])
    assert {"avalanche_forgetting", "avalanche_bwt", "train_time_s", "train/acc",
            "accuracy_matrix/nrows"} <= set(run_summary)
    experiment = next(s for s in summaries if "final_avg_acc" not in s)
    assert experiment["AlphaMAS λ=N/final_avg_acc"] == pytest.approx(record["final_avg_acc"])
    assert "results/nrows" in experiment
    drawn = {Path(p).stem for p in summary["figures"]}  # one lambda in one order: neither figure
    assert drawn == set(FIGURES) - {"order_sensitivity", "max_forgetting_vs_lambda"}
    assert {f"figures/{name}/path" for name in drawn} <= set(experiment)


@pytest.mark.slow
def test_a_method_that_cannot_be_built_is_a_config_error_and_not_retried(tmp_path, capsys):
    def bad_builder(params, n_tasks):  # declares no constructor: not checked at load time
        raise ValueError("test_bad_build: lambda must be positive")

    register(MethodEntry("test_bad_build", "Bad build (test)", "naive", bad_builder))
    try:
        config = tiny_config(tmp_path, [MethodConfig("test_bad_build"), MethodConfig("naive")])
        with pytest.warns(UserWarning, match=r"1 run\(s\) cannot be built from the config"):
            summary = run_experiment(config, executor=sequential_executor)
    finally:
        REGISTRY.pop("test_bad_build")
    failure = json.loads((Path(config.output_dir) / "failed" /
                          "final__test_bad_build__default__seed0__order01234.json").read_text())
    assert failure["config_error"] and failure["attempts"] == 1
    assert failure["error"].startswith("ConfigError: methods[test_bad_build] with params {}: test_bad_build")
    assert summary["config_errors"] == summary["failed_runs"] == ["final__test_bad_build__default__seed0__order01234"]
    assert summary["counts"] == "1 run + 5 single-task references"  # the failed run is no result
    assert "config error, not retried" in capsys.readouterr().err


@pytest.mark.slow
def test_wandb_failure_keeps_local_results(tmp_path, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(wandb, "init", broken_init)
    config = tiny_config(tmp_path, [MethodConfig("naive")], wandb="offline")
    with pytest.warns(UserWarning, match="W&B logging failed.*disk full") as caught:
        summary = run_experiment(config)
    assert sum("W&B logging failed" in str(w.message) for w in caught) == 1
    assert summary["n_runs"] == 1 and (Path(config.output_dir) / "table.md").is_file()


def test_config_yaml_round_trip_and_errors(tmp_path):
    config = preset("full")
    config.save(tmp_path / "c.yaml")
    assert ExperimentConfig.load(tmp_path / "c.yaml") == config
    chosen = {m.name: {"chosen": {k: v[0] for k, v in m.select.items()}}
              for m in config.methods if m.select}
    # the write-up's sweep: 4 strengths x 5 placements x 5 seeds; MAS: 5 placements x 10
    # seeds; the tuned AlphaMAS modes and Naive: 10 seeds; every other method 5
    assert len(final_specs(config, chosen)) == (
        4 * 5 * 5 + 5 * 10 + 3 * 10 + 5 * (len(config.methods) - 5))
    waiting = [m for m in config.methods if m.select and m.name != "mas"]  # no choice yet
    assert len(final_specs(config, {"mas": chosen["mas"]})) == len(final_specs(config, chosen)) - (
        2 * 10 + 5 * (len(waiting) - 2))
    assert len(single_task_specs(config)) == 10 * 5  # every seed a final run uses
    with pytest.raises(ValueError, match="epochs"):
        ExperimentConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown key"):
        ExperimentConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="methods"):
        ExperimentConfig(methods=[{"name": "nope"}])
    with pytest.raises(ValueError, match="wandb"):
        ExperimentConfig(wandb="yes")


def test_registry_builds_every_method():
    for name in REGISTRY:
        kind, plugins = build_method(name, {}, 5)
        assert kind in ("naive", "joint")
    _, (plugin,) = build_method("alpha_mas", {"lambda_multiplier": 1.5}, 5)
    assert plugin.penalty.lambda_reg == 7.5


@pytest.mark.slow
def test_cli_help_and_missing_data_error(tmp_path, capsys):
    text = build_parser().format_help()
    for option in ("--quick", "--full", "--cifar", "--config", "--output", "--wandb",
                   "--data-root", "--device"):
        assert option in text
    code = main(["--full", "--data-root", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--methods", "naive", "--no-select"])
    assert code == 2
    assert "MNIST: missing 4 file(s)" in capsys.readouterr().err


@pytest.mark.slow
def test_small_mnist_slice_end_to_end(mnist_root, tmp_path):
    config = ExperimentConfig(benchmark="split_mnist", data_root=str(mnist_root.parent),
                              methods=[MethodConfig("alpha_mas_writeup"), MethodConfig("naive")],
                              epochs=2, batch_size=25, train_samples_per_task=100,
                              eval_samples_per_task=100, output_dir=str(tmp_path / "mnist"))
    summary = run_experiment(config)
    assert summary["benchmark"] == "Split MNIST"
    assert (Path(config.output_dir) / "table.md").read_text().startswith("**Split MNIST")
    for label in ("AlphaMAS λ=N", "Naive (fine-tuning)"):  # two-way tasks: chance is 0.5
        assert summary["methods"][label]["final_avg_acc"]["mean"] > 0.7
