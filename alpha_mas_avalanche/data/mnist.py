"""Split MNIST: Avalanche's ``SplitMNIST`` on the checked idx files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alpha_mas_avalanche.data.integrity import check_mnist


def split_mnist(data_root: str | Path | None, options: dict[str, Any]):
    """``SplitMNIST`` with ``options`` (see :func:`~.streams.scenario_options`)."""
    from avalanche.benchmarks.classic import SplitMNIST

    return SplitMNIST(dataset_root=check_mnist(data_root), **options)
