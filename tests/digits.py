"""A real, offline benchmark for fast tests: scikit-learn's 8x8 digits split into the
reference pairs (1,2) (3,4) (5,6) (7,8) (9,0), task-incremental, with Avalanche's own
``nc_benchmark``."""
from __future__ import annotations

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from sklearn.datasets import load_digits
from torch import nn

from avalanche.models import MultiHeadClassifier, MultiTaskModule

CLASS_ORDER = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def digits_tensors(dtype=torch.float32):
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=dtype), torch.tensor(y)


def digits_benchmark(seed: int = 0, n_train: int = 1400):
    x, y = digits_tensors()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    train = _make_taskaware_tensor_classification_dataset(x[:n_train], y[:n_train])
    test = _make_taskaware_tensor_classification_dataset(x[n_train:], y[n_train:])
    return nc_benchmark(train, test, n_experiences=5, task_labels=True, seed=seed,
                        fixed_class_order=CLASS_ORDER, class_ids_from_zero_in_each_exp=True)


class MultiHeadMLP(MultiTaskModule):
    """64 -> hidden -> hidden trunk with one 2-way head per task."""

    def __init__(self, hidden: int = 64, in_features: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU())
        self.classifier = MultiHeadClassifier(hidden, 2)

    def features(self, x):
        return self.trunk(x)

    def forward_single_task(self, x, task_label):
        return self.classifier(self.trunk(x), task_label)
