"""Fetching the official datasets on request (``compare-baselines --download``): torchvision
downloads MNIST or CIFAR-10 into ``<data_root>``, where the runs then find them. Off by
default, and never used by the tests or CI (which read ``../shared/data``)."""
from __future__ import annotations

from pathlib import Path

from alpha_mas_avalanche.data.integrity import DatasetNotFoundError, resolve_data_root
from alpha_mas_avalanche.data.names import LONG_STREAMS

#: benchmark -> (torchvision dataset, folder under the data root)
SOURCES = {"split_mnist": ("MNIST", "mnist"), "split_mnist_hsu2018": ("MNIST", "mnist"),
           "split_mnist_scaled": ("MNIST", "mnist"),
           **{name: ("MNIST", "mnist") for name in LONG_STREAMS},
           "split_cifar10": ("CIFAR10", "cifar10")}


def download(benchmark: str, data_root: str | Path | None = None) -> Path | None:
    """Download ``benchmark``'s train and test sets into ``<data_root>/<folder>`` (files
    already there are checked by torchvision, not fetched again); None when there is
    nothing to download (scikit-learn's digits ship with scikit-learn)."""
    if benchmark == "split_cifar10_jpeg":
        raise DatasetNotFoundError(
            "--download: the CIFAR-10 JPEG (q75) copy is this repository's offline stand-in "
            "and cannot be downloaded; use --benchmark split_cifar10 --download to fetch the "
            "official CIFAR-10 batches")
    if benchmark not in SOURCES:
        return None
    import torchvision

    name, folder = SOURCES[benchmark]
    root = resolve_data_root(data_root) / folder
    dataset = getattr(torchvision.datasets, name)
    for train in (True, False):
        dataset(str(root), train=train, download=True)
    return root
