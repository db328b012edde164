"""Benchmarks: class pairs, task orders, validation split, and the missing-data error."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from alpha_mas_avalanche.data import (
    DatasetNotFoundError,
    cifar10_benchmark_from_arrays,
    make_benchmark,
    placements,
    resolve_data_root,
)

# Official MNIST test counts per class (torchvision; shared/data/README.md).
MNIST_TEST_COUNTS = {0: 980, 1: 1135, 2: 1032, 3: 1010, 4: 982, 5: 892, 6: 958, 7: 1028,
                     8: 974, 9: 1009}


def test_digits_pairs_sizes_and_task_labels():
    bm = make_benchmark("split_digits", seed=0)
    assert bm.task_classes == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 0)]
    counts = np.bincount(load_digits().target)
    for position, (a, b) in enumerate(bm.task_classes):
        train = len(bm.train_stream[position].dataset)
        valid = len(bm.valid_stream[position].dataset)
        test = len(bm.test_stream[position].dataset)
        assert train + valid + test == counts[a] + counts[b]
        assert valid == pytest.approx(0.1 * (train + valid), abs=1)
        for stream in (bm.train_stream, bm.valid_stream, bm.test_stream):
            experience = stream[position]
            assert experience.task_labels == [position]
            assert sorted(set(experience.dataset.targets)) == [0, 1]  # ids from zero per task


def test_validation_and_training_samples_are_disjoint():
    bm = make_benchmark("split_digits", seed=3)
    for position in range(5):
        train = {tuple(x.flatten().tolist()) for x, *_ in bm.train_stream[position].dataset}
        valid = [tuple(x.flatten().tolist()) for x, *_ in bm.valid_stream[position].dataset]
        # digits has a few exact duplicate images; all but those must be new
        assert sum(v in train for v in valid) <= 2


def test_task_order_moves_pair_and_keeps_its_samples():
    reference = make_benchmark("split_digits", seed=0)
    moved = make_benchmark("split_digits", seed=0, task_order=[1, 2, 3, 4, 0])
    assert moved.task_classes[-1] == (1, 2) and moved.task_pairs == [1, 2, 3, 4, 0]
    assert moved.test_stream[4].task_labels == [4]
    a = torch.stack([x for x, *_ in reference.test_stream[0].dataset])
    b = torch.stack([x for x, *_ in moved.test_stream[4].dataset])
    assert torch.equal(a, b)
    assert placements(0) == [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [1, 2, 0, 3, 4],
                             [1, 2, 3, 0, 4], [1, 2, 3, 4, 0]]


def test_class_incremental_has_one_task_and_global_class_ids():
    bm = make_benchmark("split_digits", scenario="class")
    assert [e.task_labels for e in bm.test_stream] == [[0]] * 5
    assert [sorted(set(e.dataset.targets)) for e in bm.test_stream] == [
        [0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


@pytest.mark.parametrize("bad", [dict(task_order=[0, 1, 2, 3]), dict(task_order=[0, 0, 1, 2, 3]),
                                 dict(validation_size=0.0), dict(scenario="online"),
                                 dict(train_samples_per_task=0)])
def test_invalid_arguments_name_the_parameter(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        make_benchmark("split_digits", **bad)


@pytest.mark.slow
def test_split_mnist_pairs_match_official_counts(mnist_root):
    bm = make_benchmark("split_mnist", data_root=mnist_root.parent, train_samples_per_task=50)
    assert bm.display_name == "Split MNIST"
    for position, (a, b) in enumerate(bm.task_classes):
        assert len(bm.test_stream[position].dataset) == MNIST_TEST_COUNTS[a] + MNIST_TEST_COUNTS[b]
        assert len(bm.train_stream[position].dataset) == 50
    x, y, t = bm.train_stream[2].dataset[0]
    assert x.shape == (1, 28, 28) and y in (0, 1) and t == 2


@pytest.mark.slow
def test_cifar10_jpeg_copy_is_labelled_and_split_in_reference_pairs(cifar10_jpeg_path):
    data_root = cifar10_jpeg_path.parents[2]
    bm = make_benchmark("split_cifar10_jpeg", data_root=data_root, train_samples_per_task=20,
                        eval_samples_per_task=20)
    assert bm.display_name == "CIFAR-10 (JPEG q75 copy)"
    assert bm.task_classes == [(2, 1), (3, 4), (5, 6), (7, 8), (9, 0)]
    x, y, t = bm.test_stream[0].dataset[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_cifar10_from_arrays_uses_the_reference_pairs():
    rng = np.random.default_rng(0)
    y_train, y_test = np.repeat(np.arange(10), 6), np.repeat(np.arange(10), 2)
    x_train = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    bm = cifar10_benchmark_from_arrays(x_train, y_train, x_test, y_test, validation_size=0.5)
    assert [len(e.dataset) for e in bm.test_stream] == [4] * 5
    assert [len(e.dataset) for e in bm.train_stream] == [6] * 5
    with pytest.raises(ValueError, match="images"):
        cifar10_benchmark_from_arrays(x_train.astype(np.float32), y_train, x_test, y_test)


@pytest.mark.parametrize("name, missing", [
    ("split_mnist", "train-images-idx3-ubyte"),
    ("split_cifar10", "data_batch_1"),
    ("split_cifar10_jpeg", "cifar10_jpeg_q75.npz"),
])
def test_missing_dataset_gives_a_clear_error_and_downloads_nothing(tmp_path, name, missing):
    with pytest.raises(DatasetNotFoundError) as info:
        make_benchmark(name, data_root=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert missing in message and str(tmp_path) in message and "downloaded" in message
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing fetched


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHA_MAS_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    assert resolve_data_root("/x") == resolve_data_root(__import__("pathlib").Path("/x"))
    monkeypatch.delenv("ALPHA_MAS_DATA_ROOT")
    assert str(resolve_data_root(None)) == "data"
