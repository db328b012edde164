"""``make_benchmark``: one of the benchmarks by name, with its validation stream and pair labels."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alpha_mas_avalanche.data.names import (
    BENCHMARKS,
    DISPLAY_NAMES,
    LONG_STREAMS,
    SCALED_MNIST_SCALES,
    SCENARIOS,
    check_scenario,
    check_task_order,
    n_tasks,
)
from alpha_mas_avalanche.data.cifar10 import split_cifar10, split_cifar10_jpeg
from alpha_mas_avalanche.data.digits import split_digits
from alpha_mas_avalanche.data.long_streams import long_stream
from alpha_mas_avalanche.data.mnist import split_mnist
from alpha_mas_avalanche.data.streams import label_pairs, scenario_options, with_validation
from alpha_mas_avalanche.validation import check_choice


def make_benchmark(
    name: str,
    *,
    scenario: str = "task",
    data_root: str | Path | None = None,
    seed: int = 0,
    task_order: Sequence[int] | None = None,
    validation_size: float = 0.1,
    train_samples_per_task: int | None = None,
    eval_samples_per_task: int | None = None,
):
    """An Avalanche benchmark with ``train_stream``, ``valid_stream`` and ``test_stream``.

    Args:
        name: one of :data:`BENCHMARKS`.
        scenario: ``"task"`` (multi-head, task labels, class ids from zero in each
            experience), ``"class"`` (single head, class ids from zero from the first) or
            ``"domain"`` (one shared head, no task labels, class ids from zero in each
            experience: the label is the position within the pair).
        data_root: folder holding ``mnist/`` and ``cifar10/`` (see :func:`resolve_data_root`).
        seed: seeds the validation split and the optional subsets.
        task_order: permutation of the task indices (0 = the reference's first pair; on
            the long streams, 0..n-1 = the permutations or angles in their order).
        validation_size: fraction of each training experience moved to ``valid_stream``.
        train_samples_per_task, eval_samples_per_task: optional seeded random subsets
            (for quick runs and tests); ``None`` keeps everything.

    The returned scenario also has ``display_name``, ``task_pairs`` (pair index per
    position) and ``task_classes`` (original class ids per position).
    """
    check_choice("name", name, BENCHMARKS)
    check_choice("scenario", scenario, SCENARIOS)
    check_scenario(name, scenario)
    order = check_task_order(task_order, n_tasks(name))
    _check_sizes(validation_size, train_samples_per_task, eval_samples_per_task)
    if name in LONG_STREAMS:
        base = long_stream(name, data_root, seed, order, validation_size,
                           train_samples_per_task, eval_samples_per_task)
        bm = with_validation(base, order, validation_size, seed, train_samples_per_task,
                             eval_samples_per_task)
        return label_pairs(bm, DISPLAY_NAMES[name], name, order)
    options = scenario_options(name, order, scenario, seed)
    if name in ("split_mnist", "split_mnist_hsu2018", "split_mnist_scaled"):
        base = split_mnist(data_root, options, padded=name == "split_mnist_hsu2018")
    elif name == "split_cifar10":
        base = split_cifar10(data_root, options)
    elif name == "split_cifar10_jpeg":
        base = split_cifar10_jpeg(data_root, options)
    else:
        base = split_digits(options)
    bm = with_validation(base, order, validation_size, seed, train_samples_per_task,
                         eval_samples_per_task,
                         precompute=name in ("split_mnist", "split_mnist_hsu2018", "split_mnist_scaled",
                                             "split_digits"),
                         input_scales=SCALED_MNIST_SCALES if name == "split_mnist_scaled" else None)
    return label_pairs(bm, DISPLAY_NAMES[name], name, order)


def _check_sizes(validation_size: float, train_samples: int | None,
                 eval_samples: int | None) -> None:
    """``validation_size`` a fraction in (0, 1); the subset sizes ints >= 1 or None."""
    if not isinstance(validation_size, (int, float)) or isinstance(validation_size, bool) \
            or not 0 < validation_size < 1:
        raise ValueError(f"validation_size: expected a fraction in (0, 1), got {validation_size!r}")
    for label, value in (("train_samples_per_task", train_samples),
                         ("eval_samples_per_task", eval_samples)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{label}: expected an int >= 1 or None (all samples), got {value!r}")

