"""Split digits: scikit-learn's 8x8 digits (offline, no files), split like MNIST."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alpha_mas_avalanche.data.streams import class_split

#: Digits test split: fixed (independent of the run seed), stratified, 30 %.
DIGITS_TEST_FRACTION = 0.3


class TensorClassificationDataset(Dataset):
    """Float input tensors with integer labels (``targets``), for ``nc_benchmark``."""

    def __init__(self, inputs: torch.Tensor, labels: Sequence[int]) -> None:
        self.inputs = inputs
        self.targets = [int(t) for t in labels]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]


def split_digits(options: dict[str, Any]):
    """scikit-learn's digits (fixed stratified 70/30 train/test split), split into pairs."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    index_train, index_test = train_test_split(
        np.arange(len(x)), test_size=DIGITS_TEST_FRACTION, stratify=digits.target, random_state=0
    )
    y = digits.target
    return class_split(
        TensorClassificationDataset(x[index_train], y[index_train]),
        TensorClassificationDataset(x[index_test], y[index_test]), options,
    )
