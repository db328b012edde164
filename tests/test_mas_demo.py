"""The MAS reference code's protocol: one anchor (``anchor="latest"``), the first-task
schedule, the ``mas_reference`` method and the ``mas_demo`` preset."""
from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from avalanche.training import Naive

from alpha_mas_avalanche import AlphaMASPlugin, mas_importance
from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment.presets import preset
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.specs import base_spec
from alpha_mas_avalanche.experiment.train import execute_run
from alpha_mas_avalanche.penalty import ConsolidatedPenalty
from alpha_mas_avalanche.experiment.records import load_records
from digits import MultiHeadMLP, digits_benchmark


def _random_task(generator: torch.Generator) -> tuple[dict, dict]:
    shapes = {"w": (3, 4), "b": (3,)}
    importance = {n: torch.rand(s, generator=generator, dtype=torch.float64) for n, s in shapes.items()}
    anchor = {n: torch.randn(s, generator=generator, dtype=torch.float64) for n, s in shapes.items()}
    return importance, anchor


@pytest.mark.parametrize("alpha_scaling", [False, True])
def test_latest_anchor_is_the_summed_quadratic_around_the_last_anchor(alpha_scaling):
    generator = torch.Generator().manual_seed(0)
    tasks = [_random_task(generator) for _ in range(3)]
    penalty = ConsolidatedPenalty(2.5, alpha_scaling=alpha_scaling, anchor="latest")
    for importance, anchor in tasks:
        penalty.add_task(importance, anchor)
    theta = {n: torch.randn(t.shape, generator=generator, dtype=torch.float64, requires_grad=True)
             for n, t in tasks[0][1].items()}
    last_anchor = tasks[-1][1]
    alphas = penalty.alphas
    # by hand: sum_t alpha_t sum_ij Omega_t (theta - theta*_3)^2
    expected = sum(alpha * ((omega[n] * (theta[n] - last_anchor[n]) ** 2).sum())
                   for alpha, (omega, _) in zip(alphas, tasks) for n in theta)
    assert torch.allclose(penalty.value(theta), expected, rtol=1e-12)
    expected.backward()
    grads = {n: t.grad.clone() for n, t in theta.items()}
    params = {n: t.detach().clone() for n, t in theta.items()}
    penalty.add_gradient_(params)
    for n in theta:
        assert torch.allclose(params[n].grad, grads[n], rtol=1e-12)
    if not alpha_scaling:
        assert alphas == [2.5, 2.5, 2.5]


def test_latest_anchor_survives_a_state_dict_round_trip():
    generator = torch.Generator().manual_seed(1)
    penalty = ConsolidatedPenalty(1.0, alpha_scaling=False, anchor="latest")
    for _ in range(2):
        penalty.add_task(*_random_task(generator))
    restored = ConsolidatedPenalty()
    restored.load_state_dict(penalty.state_dict())
    importance, anchor = _random_task(generator)
    penalty.add_task(importance, anchor)
    restored.add_task(importance, anchor)
    assert restored.anchor == "latest"
    for name in anchor:
        assert torch.equal(restored.center[name], anchor[name])
        assert torch.equal(restored.weight[name], penalty.weight[name])


def test_a_bad_anchor_names_the_parameter_and_the_choices():
    with pytest.raises(ValueError, match=r"^anchor: ") as error:
        AlphaMASPlugin(anchor="last")
    assert "per_task" in str(error.value) and "latest" in str(error.value)


class _Snapshots:
    """Copies of the model after each training experience (an Avalanche plugin)."""

    def __init__(self):
        self.models = []

    def __getattr__(self, name):  # every other hook: nothing
        if name.startswith(("before_", "after_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def after_training_exp(self, strategy, **kwargs):
        self.models.append(copy.deepcopy(strategy.model))


def test_reference_code_mas_sums_the_importances_and_keeps_the_latest_parameters():
    torch.manual_seed(0)
    bm = digits_benchmark()
    model = MultiHeadMLP()
    plugin = AlphaMASPlugin(lambda_reg=1.0, alpha_scaling=False, anchor="latest")
    snapshots = _Snapshots()
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                     train_mb_size=32, train_epochs=2, plugins=[snapshots, plugin], device="cpu")
    for experience in bm.train_stream[:3]:
        strategy.train(experience)
    # an independent estimate of each task's Omega at the model it was trained to
    omegas = [mas_importance(m, e.dataset.eval(), task_label=e.task_label)
              for m, e in zip(snapshots.models, bm.train_stream[:3])]
    last = dict(snapshots.models[-1].named_parameters())
    for name, weight in plugin.penalty.weight.items():
        expected = sum(_padded(o[name], weight) for o in omegas if name in o)
        assert torch.allclose(weight, expected, rtol=1e-5, atol=1e-12), name
        assert torch.equal(plugin.penalty.center[name], last[name].detach()), name
    assert plugin.penalty.offset == 0.0
    assert plugin.alphas == [1.0, 1.0, 1.0]


def _padded(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` zero-padded to ``like``'s shape (a multi-head layer that grew)."""
    out = torch.zeros_like(like)
    out[tuple(slice(0, s) for s in tensor.shape)] = tensor
    return out


def _digits_spec(**changes):
    config = ExperimentConfig(benchmark="split_digits", optimizer="sgd", epochs=1, lr=1e-3,
                              batch_size=32, methods=[MethodConfig("naive")], **changes)
    return base_spec(config, 0, [0, 1, 2, 3, 4], method="naive", eval_stream="valid")


def test_first_task_schedule_sets_its_epochs_and_learning_rate():
    plain = execute_run(_digits_spec())
    same = execute_run(_digits_spec(first_task_lr=1e-3, first_task_epochs=1, first_task_batch_size=32))
    assert same["acc_matrix"] == plain["acc_matrix"]  # the same schedule: the same run
    scheduled = execute_run(_digits_spec(first_task_epochs=3, first_task_lr=0.2))
    assert [p["experience"] for p in scheduled["epochs"]] == [0, 0, 0, 1, 2, 3, 4]
    assert [p["experience"] for p in scheduled["heldout_per_epoch"]] == [0, 0, 0, 1, 2, 3, 4]
    # 1 epoch of SGD at lr 1e-3 barely moves the first head; 3 epochs at 0.2 learn the pair
    assert plain["acc_matrix"][0][0] < 0.8 < scheduled["acc_matrix"][0][0]


def test_first_task_settings_are_checked_and_change_the_settings_key():
    with pytest.raises(ValueError, match="first_task_lr"):
        ExperimentConfig(first_task_lr=-1.0)
    with pytest.raises(ValueError, match="first_task_epochs"):
        ExperimentConfig(first_task_epochs=0)
    assert _digits_spec().settings_key() != _digits_spec(first_task_epochs=2).settings_key()


def test_mas_demo_preset_is_the_reference_code_protocol():
    config = preset("mas_demo")
    assert (config.model, config.optimizer, config.benchmark, config.scenario) == \
        ("mlp256", "sgd", "split_mnist", "task")
    assert (config.first_task_epochs, config.first_task_lr, config.first_task_batch_size) == (10, 1e-2, 200)
    assert (config.epochs, config.lr, config.batch_size) == (20, 1e-3, 150)
    names = [m.name for m in config.methods]
    assert names == ["alpha_mas", "alpha_mas_writeup", "mas_reference", "mas",
                     "alpha_mas_per_task", "naive", "joint"]
    assert config.methods[1].sweep == {"lambda_multiplier": [1.0, 1.5, 2.0]}
    tuned = {m.name: (m.refine, m.seeds) for m in config.methods if m.refine}
    assert tuned == {name: (True, list(range(10))) for name in ("alpha_mas", "mas", "alpha_mas_per_task")}


@pytest.mark.slow
def test_mas_demo_runs_on_a_slice_of_mnist(tmp_path, capsys):
    data_root = os.environ.get("ALPHA_MAS_DATA_ROOT")
    if not data_root or not (Path(data_root) / "mnist").is_dir():
        pytest.skip("needs the MNIST files (ALPHA_MAS_DATA_ROOT)")
    out = tmp_path / "demo"
    main(["--preset", "mas_demo", "--data-root", str(Path(data_root).resolve()), "--output", str(out),
          "--seeds", "0", "--epochs", "1", "--train-samples", "40",
          "--methods", "mas_reference", "--no-select", "--workers", "1", "--threads", "1"])
    records = load_records(out / "runs", "final__mas_reference")
    assert len(records) == 1
    record = records[0]
    # 784-256-256 trunk and five 2-way heads, counted by hand
    assert record["n_parameters"] == (784 * 256 + 256) + (256 * 256 + 256) + 5 * (256 * 2 + 2)
    assert record["label"] == "MAS (reference code)"
    assert len(record["epochs"]) == 10 + 4 * 1  # first task: 10 epochs (the preset's), then --epochs
    assert "MAS (reference code" in (out / "table.md").read_text()


def test_a_diverged_validation_run_is_a_result_ranked_last():
    from alpha_mas_avalanche.experiment.selection import choose_hyperparameters, selection_specs

    config = ExperimentConfig(benchmark="split_digits", optimizer="sgd", epochs=1, lr=0.1,
                              batch_size=32, methods=[MethodConfig("mas_reference",
                                                                   select={"lambda_reg": [1.0, 1e6]})])
    records = {}
    for spec in selection_specs(config):
        record = execute_run(spec)
        records[spec.run_id] = record
    by_lambda = {r["params"]["lambda_reg"]: r for r in records.values()}
    assert "diverged" in by_lambda[1e6] and by_lambda[1e6]["final_avg_acc"] is None
    assert "lambda_reg" in by_lambda[1e6]["diverged"]  # the error names the strength
    assert "diverged" not in by_lambda[1.0] and by_lambda[1.0]["final_avg_acc"] > 0.5
    choice = choose_hyperparameters(config, records)["mas_reference"]
    assert choice["chosen"] == {"lambda_reg": 1.0}
    assert list(choice["valid_acc"].values())[1] is None
    final = base_spec(config, 0, [0, 1, 2, 3, 4], method="mas_reference", params={"lambda_reg": 1e6})
    with pytest.raises(FloatingPointError):  # a final run that diverges stays a failure
        execute_run(final)
    # a sensitivity-curve run away from the chosen value: its divergence is its result
    curve = execute_run(replace(final, curve_point=True))
    assert curve["final_avg_acc"] is None and "lambda_reg" in curve["diverged"]
    assert curve["run_id"] == final.run_id and curve["eval_stream"] == "test"
