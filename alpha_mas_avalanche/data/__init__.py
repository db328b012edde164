"""Benchmarks: Split MNIST, Split CIFAR-10 and offline Split digits (five two-class tasks),
and the long domain-incremental streams, permuted and rotated MNIST (10 or 20 ten-class tasks).

Every benchmark has a ``train_stream``, a ``valid_stream`` carved
from the training data with Avalanche's ``benchmark_with_validation_stream`` (used for
every hyperparameter choice) and a ``test_stream``. Task-incremental (multi-head,
``return_task_id=True``) is the default; class-incremental is an option.

Datasets are never downloaded: the files are checked before torchvision/Avalanche is
called, and :class:`DatasetNotFoundError` says which files are missing and how to get them.

Modules: :mod:`.names` (benchmark names, pairs, task orders), :mod:`.integrity` (file
checks and errors), :mod:`.benchmark` (``make_benchmark``), :mod:`.streams` (validation
stream, subsets, shared options), one per family (:mod:`.mnist`, :mod:`.cifar10`,
:mod:`.digits`, :mod:`.long_streams`). The names and checks import neither torch nor Avalanche; the benchmark
builders are imported on first use.
"""
from __future__ import annotations

from alpha_mas_avalanche.data.integrity import (
    CIFAR10_FILES,
    CIFAR10_JPEG_FILE,
    IDX_KINDS,
    JPEG_NPZ_FIX,
    MNIST_FILES,
    MNIST_FIX,
    MNIST_SHAPES,
    DatasetCorruptError,
    DatasetNotFoundError,
    check_cifar10,
    check_cifar10_jpeg,
    check_idx_file,
    check_jpeg_npz,
    check_mnist,
    cifar10_files,
    mnist_files,
    resolve_data_root,
)
from alpha_mas_avalanche.data.names import (
    BENCHMARKS,
    CIFAR10_CLASS_NAMES,
    CIFAR10_CLASS_ORDER,
    DISPLAY_NAMES,
    MNIST_CLASS_ORDER,
    MOVED_PAIR,
    N_TASKS,
    SCENARIOS,
    check_task_order,
    class_order,
    pair_classes,
    placements,
)
from alpha_mas_avalanche.lazy import lazy_exports

#: Names that need torch or Avalanche: imported from their module on first access.
_LAZY = {
    "make_benchmark": "benchmark",
    "as_tensor_dataset": "streams",
    "ArrayImageDataset": "cifar10",
    "cifar10_benchmark_from_arrays": "cifar10",
    "load_cifar10_jpeg_arrays": "cifar10",
    "TensorClassificationDataset": "digits",
    "DIGITS_TEST_FRACTION": "digits",
    "download": "fetch",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "BENCHMARKS", "CIFAR10_CLASS_NAMES", "CIFAR10_CLASS_ORDER", "CIFAR10_FILES",
    "CIFAR10_JPEG_FILE", "DISPLAY_NAMES", "IDX_KINDS", "JPEG_NPZ_FIX", "MNIST_CLASS_ORDER",
    "MOVED_PAIR", "MNIST_FILES", "MNIST_FIX", "MNIST_SHAPES", "N_TASKS", "SCENARIOS",
    "DatasetCorruptError", "DatasetNotFoundError", "check_cifar10", "check_cifar10_jpeg",
    "check_idx_file", "check_jpeg_npz", "check_mnist", "check_task_order", "cifar10_files",
    "class_order", "mnist_files", "pair_classes", "placements", "resolve_data_root", *_LAZY,
]
