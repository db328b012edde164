"""Split MNIST: Avalanche's ``SplitMNIST`` on the checked idx files, as Avalanche ships it
(28x28) or as Hsu et al. (2018) feed it (zero-padded to 32x32, their normalisation)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alpha_mas_avalanche.data.integrity import check_mnist

#: Hsu et al.'s ``dataloaders/base.py``: Pad(2) then Normalize(0.1000, 0.2752) "for 32x32".
HSU2018_MEAN, HSU2018_STD = 0.1000, 0.2752


def split_mnist(data_root: str | Path | None, options: dict[str, Any], *, padded: bool = False):
    """``SplitMNIST`` with ``options`` (see :func:`~.streams.scenario_options`); ``padded``:
    32x32 inputs (2 zero pixels on each side) normalised as in Hsu et al. (2018)."""
    from avalanche.benchmarks.classic import SplitMNIST

    if padded:
        from torchvision import transforms

        transform = transforms.Compose([transforms.Pad(2, fill=0),
                                        transforms.Normalize((HSU2018_MEAN,), (HSU2018_STD,))])
        options = {**options, "train_transform": transform, "eval_transform": transform}
    return SplitMNIST(dataset_root=check_mnist(data_root), **options)
