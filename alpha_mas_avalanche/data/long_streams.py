"""Permuted and rotated MNIST: long domain-incremental streams, every task all ten digits
under its own pixel permutation (Goodfellow et al. 2013; Kirkpatrick et al. 2017; Zenke et
al. 2017) or its own rotation angle (Lopez-Paz & Ranzato 2017), one shared 10-way head."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from alpha_mas_avalanche.data.integrity import check_mnist
from alpha_mas_avalanche.data.names import LONG_STREAMS

#: Avalanche's MNIST normalisation (``SplitMNIST``'s default transforms).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def task_transform(name: str, task: int, seed: int):
    """``images (N, 1, 28, 28) in [0, 1] -> images`` of task ``task``: permuted tasks use
    a pixel permutation drawn from ``(seed, task)``, the first task included (as Avalanche's
    ``PermutedMNIST``); rotated tasks turn by ``task * 180 / n`` degrees (task 0 unrotated)."""
    n = LONG_STREAMS[name]
    if name.startswith("permuted"):
        permutation = torch.from_numpy(np.random.default_rng([seed, task]).permutation(28 * 28))
        return lambda x: x.flatten(1)[:, permutation].view_as(x)
    from torchvision.transforms.functional import rotate

    angle = task * 180.0 / n
    return lambda x: rotate(x, angle, fill=0.0)


def _pool(count: int, wanted: int | None, seed: int, stream: int, task: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``wanted`` images (all if None)."""
    if wanted is None or wanted >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, stream, task]).permutation(count)[:wanted])


def long_stream(name: str, data_root: str | Path | None, seed: int, order: Sequence[int],
                validation_size: float, train_samples: int | None, eval_samples: int | None):
    """The stream's train and test experiences, tasks in ``order``, as an Avalanche benchmark
    (task label 0, the ten digit labels); each task draws its own images (``train_samples`` of them, plus as
    many as ``validation_size`` will move to the validation stream; ``None``: all 60,000),
    transformed once, in memory."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from torchvision.datasets import MNIST

    root = check_mnist(data_root)
    splits = [MNIST(str(root), train=train, download=False) for train in (True, False)]
    pool_sizes = (None if train_samples is None
                  else math.ceil(train_samples / (1.0 - validation_size)), eval_samples)
    streams: dict[str, list] = {"train": [], "test": []}
    for task in order:
        transform = task_transform(name, task, seed)
        for stream_id, (stream, split, wanted) in enumerate(zip(streams, splits, pool_sizes)):
            index = torch.from_numpy(_pool(len(split.targets), wanted, seed, stream_id, task))
            images = split.data[index].unsqueeze(1).float() / 255.0
            inputs = (transform(images) - MNIST_MEAN) / MNIST_STD
            streams[stream].append(_make_taskaware_tensor_classification_dataset(
                inputs.contiguous(), split.targets[index].clone(), task_labels=0))
    return benchmark_from_datasets(train=streams["train"], test=streams["test"])
