"""What every benchmark shares: the scenario options, the validation stream carved from the
training data (Avalanche's ``benchmark_with_validation_stream``), seeded subsets, precomputed
transforms and the pair labels set on the returned scenario."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alpha_mas_avalanche.data.names import LONG_STREAMS, N_TASKS, class_order, pair_classes


def scenario_options(benchmark: str, order: list[int], scenario: str, seed: int) -> dict[str, Any]:
    """Avalanche's class-split options for ``scenario`` in ``order``: task labels only for
    "task"; class ids from zero in each experience for "task" and "domain" (the position
    within the pair), from the first experience for "class"."""
    return dict(
        n_experiences=N_TASKS,
        return_task_id=scenario == "task",
        seed=seed,
        fixed_class_order=class_order(benchmark, order),
        class_ids_from_zero_in_each_exp=scenario in ("task", "domain"),
        class_ids_from_zero_from_first_exp=scenario == "class",
    )


def class_split(train_dataset, test_dataset, options: dict[str, Any], **transforms):
    """Avalanche's ``nc_benchmark`` over two datasets with :func:`scenario_options`."""
    from avalanche.benchmarks import nc_benchmark

    return nc_benchmark(
        train_dataset, test_dataset,
        n_experiences=options["n_experiences"], task_labels=options["return_task_id"],
        seed=options["seed"], fixed_class_order=options["fixed_class_order"],
        class_ids_from_zero_in_each_exp=options["class_ids_from_zero_in_each_exp"],
        class_ids_from_zero_from_first_exp=options["class_ids_from_zero_from_first_exp"],
        **transforms,
    )


def label_pairs(bm, display_name: str, benchmark: str, order: Sequence[int]):
    """Set ``display_name``, ``task_pairs`` and ``task_classes`` on ``bm``; return it."""
    bm.display_name = display_name
    bm.task_pairs = order
    bm.task_classes = [tuple(range(10)) if benchmark in LONG_STREAMS else pair_classes(benchmark, k)
                       for k in order]
    return bm


def as_tensor_dataset(dataset, scale: float = 1.0):
    """The same samples with their (deterministic) transforms applied once, as an Avalanche
    tensor dataset with the same targets and task labels.

    Avalanche reads a dataset one sample at a time through its transform chain (for
    MNIST: PIL image -> ToTensor -> Normalize on every read), which dominated a Split MNIST
    run's time. Only for datasets whose train and eval transforms are equal and
    deterministic (MNIST, digits): the values are those every read would give, times
    ``scale``.
    """
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=1024, shuffle=False,
                        collate_fn=getattr(dataset, "collate_fn", None), generator=torch.Generator())
    inputs, targets, tasks = [], [], []
    for x, y, t in loader:
        inputs.append(x)
        targets.append(y)
        tasks.append(t)
    return _make_taskaware_tensor_classification_dataset(
        torch.cat(inputs) * scale, torch.cat(targets), task_labels=torch.cat(tasks).tolist()
    )


def with_validation(base, order: list[int], validation_size: float, seed: int,
                     train_samples: int | None, eval_samples: int | None,
                     precompute: bool = False, input_scales: Sequence[float] | None = None):
    """Avalanche's validation split, optional seeded subsets, task labels and classes;
    with ``precompute`` the deterministic transforms are applied once (:func:`as_tensor_dataset`),
    and the inputs of pair k multiplied by ``input_scales[k]`` where given."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    from avalanche.benchmarks.scenarios.task_aware import with_task_labels
    from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream

    split = benchmark_with_validation_stream(base, validation_size, shuffle=True, seed=seed)

    def subset(stream_id: int, pair: int, dataset, limit):
        # one generator per (seed, stream, pair): a pair gets the same samples at any position
        if limit is not None and len(dataset) > limit:
            generator = np.random.default_rng([seed, stream_id, pair])
            dataset = dataset.subset(np.sort(generator.permutation(len(dataset))[:limit]).tolist())
        if not precompute:
            return dataset
        return as_tensor_dataset(dataset, 1.0 if input_scales is None else input_scales[pair])

    streams = {
        name: [subset(stream_id, pair, e.dataset, limit) for pair, e in zip(order, stream)]
        for stream_id, (name, stream, limit) in enumerate((
            ("train", split.train_stream, train_samples),
            ("valid", split.valid_stream, eval_samples),
            ("test", split.test_stream, eval_samples),
        ))
    }
    bm = with_task_labels(with_classes_timeline(benchmark_from_datasets(**streams)))
    for stream in bm.streams.values():
        for experience in stream:
            # Avalanche 0.6's MultiHeadClassifier indexes with this: a list, not a set
            experience.classes_in_this_experience = sorted(experience.classes_in_this_experience)
    return bm
