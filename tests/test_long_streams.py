"""Permuted and rotated MNIST: the tasks hold what they say, and every registry method runs
on a 10-task stream with N = 10 in its strengths."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from alpha_mas_avalanche.experiment.presets import preset
from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.data.long_streams import MNIST_MEAN, MNIST_STD
from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.methods import available_methods
from alpha_mas_avalanche.experiment.specs import base_spec, single_task_specs
from alpha_mas_avalanche.experiment.train import execute_run


@pytest.fixture(scope="module")
def data_root() -> str:
    root = os.environ.get("ALPHA_MAS_DATA_ROOT")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("needs the MNIST files (ALPHA_MAS_DATA_ROOT)")
    return str(Path(root).resolve())


def _raw_test_images(data_root: str) -> torch.Tensor:
    from torchvision.datasets import MNIST

    images = MNIST(str(Path(data_root) / "mnist"), train=False, download=False).data
    return (images.float() / 255.0 - MNIST_MEAN) / MNIST_STD


def _test_inputs(bm, task: int) -> torch.Tensor:
    return torch.stack([x for x, _, _ in bm.test_stream[task].dataset])


def test_permuted_tasks_shuffle_the_pixels_of_the_same_images(data_root):
    bm = make_benchmark("permuted_mnist", scenario="domain", data_root=data_root,
                        train_samples_per_task=20)
    raw = _raw_test_images(data_root).flatten(1)
    assert len(bm.train_stream) == len(bm.test_stream) == 10
    flat = [_test_inputs(bm, k).flatten(1) for k in (0, 1, 9)]
    for inputs in flat:  # every test image, its pixels in another order
        assert inputs.shape == raw.shape
        assert torch.equal(inputs.sort(dim=1).values, raw.sort(dim=1).values)
        assert not torch.equal(inputs, raw)
    assert not torch.equal(flat[1], flat[2])
    # one permutation per task: the column that holds pixel (14, 14) of every image
    column = [int((inputs == raw[:, 14 * 28 + 14: 14 * 28 + 15]).all(dim=0).nonzero()[0]) for inputs in flat]
    assert len(set(column)) == 3
    labels = [y for _, y, _ in bm.test_stream[0].dataset]
    assert sorted(set(labels)) == list(range(10))


def test_rotated_tasks_turn_the_images_by_their_angle(data_root):
    bm = make_benchmark("rotated_mnist", scenario="domain", data_root=data_root,
                        train_samples_per_task=20)
    raw = _raw_test_images(data_root)[:500]
    first = _test_inputs(bm, 0)[:500, 0]
    assert torch.allclose(first, raw, atol=1e-6)  # task 0: unrotated
    turned = _test_inputs(bm, 5)[:500, 0]  # 5 * 18 = 90 degrees counter-clockwise
    expected = torch.rot90(raw, k=1, dims=(1, 2))
    assert torch.allclose(turned, expected, atol=1e-4)
    assert not torch.allclose(turned, raw, atol=0.5)


def test_long_streams_are_domain_incremental_only():
    with pytest.raises(ValueError, match="^scenario: permuted_mnist is domain-incremental"):
        ExperimentConfig(benchmark="permuted_mnist", scenario="task")
    config = ExperimentConfig(benchmark="rotated_mnist_20", scenario="domain")
    assert config.task_orders == [list(range(20))]
    assert len(single_task_specs(config)) == 20
    with pytest.raises(ValueError, match="task_orders"):
        ExperimentConfig(benchmark="permuted_mnist", scenario="domain", task_orders=[[0, 1, 2, 3, 4]])


@pytest.mark.slow
def test_every_method_runs_on_a_slice_of_permuted_mnist(data_root):
    config = preset("permuted_mnist")
    config.data_root, config.train_samples_per_task, config.eval_samples_per_task = data_root, 30, 30
    config.epochs = 1
    hand_count = (784 * 400 + 400) + (400 * 400 + 400) + (400 * 10 + 10)
    for name in available_methods():
        spec = base_spec(config, 0, list(range(10)), method=name,
                         params={"lambda_multiplier": 1.5} if name == "alpha_mas_writeup" else {})
        record = execute_run(spec)
        assert len(record["final_acc"]) == 10, name
        assert len(record["acc_matrix"]) == (1 if name == "joint" else 10), name
        if name not in ("ebll",):  # EBLL adds its autoencoders' parameters
            assert record["n_parameters"] == hand_count, name
        if name == "alpha_mas_writeup":  # lambda = 1.5 N with N = 10 tasks
            alphas = record["alphas_per_experience"][-1]
            assert len(alphas) == 10 and math.isclose(sum(alphas), 15.0, rel_tol=1e-9)


def test_scaled_split_mnist_multiplies_each_pairs_inputs_by_its_scale(data_root):
    from alpha_mas_avalanche.data.names import SCALED_MNIST_SCALES

    options = dict(scenario="task", data_root=data_root, seed=3, task_order=[4, 0, 1, 2, 3],
                   train_samples_per_task=50, eval_samples_per_task=20)
    plain = make_benchmark("split_mnist", **options)
    scaled = make_benchmark("split_mnist_scaled", **options)
    for position, pair in enumerate([4, 0, 1, 2, 3]):
        for stream in ("train_stream", "valid_stream", "test_stream"):
            a = getattr(plain, stream)[position].dataset
            b = getattr(scaled, stream)[position].dataset
            xa = torch.stack([x for x, _, _ in a])
            xb = torch.stack([x for x, _, _ in b])
            assert torch.equal(xb, xa * SCALED_MNIST_SCALES[pair])
            assert [y for _, y, _ in a] == [y for _, y, _ in b]


@pytest.mark.parametrize("argv", [
    ["--preset", "permuted_mnist", "--scenario", "task"],
    ["--full", "--benchmark", "rotated_mnist"],
    ["--full", "--benchmark", "rotated_mnist_20", "--scenario", "class"],
])
def test_a_long_stream_in_another_scenario_is_refused_naming_the_flag(argv, capsys):
    from alpha_mas_avalanche.cli import main

    assert main([*argv, "--save-config", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "--scenario: " in err and "is domain-incremental" in err and "'domain'" in err


def test_a_five_task_preset_runs_a_long_stream_in_its_own_order(tmp_path):
    from alpha_mas_avalanche.cli import main

    path = tmp_path / "config.yaml"
    assert main(["--full", "--benchmark", "rotated_mnist", "--scenario", "domain",
                 "--save-config", str(path)]) == 0
    config = ExperimentConfig.load(path)
    assert config.task_orders == [list(range(10))]
    assert all(m.task_orders is None for m in config.methods)


@pytest.mark.parametrize("argv, n_tasks", [
    (["--preset", "permuted_mnist", "--benchmark", "permuted_mnist_20"], 20),
    (["--preset", "rotated_mnist_20", "--benchmark", "rotated_mnist"], 10),
    (["--preset", "permuted_mnist", "--benchmark", "split_mnist", "--scenario", "domain"], 5),
])
def test_a_long_stream_preset_on_another_benchmark_runs_in_that_ones_order(tmp_path, argv, n_tasks):
    from alpha_mas_avalanche.cli import main

    path = tmp_path / "config.yaml"
    assert main([*argv, "--save-config", str(path)]) == 0
    config = ExperimentConfig.load(path)
    assert config.task_orders == [list(range(n_tasks))]
    assert all(m.task_orders is None for m in config.methods)
