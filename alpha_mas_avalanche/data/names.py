"""Names of the benchmarks, scenarios, class pairs and task orders (no torch, no Avalanche:
cheap enough for the CLI and the config checks to import)."""
from __future__ import annotations

from collections.abc import Sequence

#: Pair index k -> the two original class ids of the reference's task k+1.
MNIST_CLASS_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)
CIFAR10_CLASS_ORDER = (2, 1, 3, 4, 5, 6, 7, 8, 9, 0)
#: Hsu, Liu, Ramasamy & Kira (2018): pairs in label order (0,1) (2,3) ... (8,9).
LABEL_ORDER = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
N_TASKS = 5
#: Long streams, domain-incremental (one shared 10-way head): every task is all of MNIST
#: under its own pixel permutation, or rotated by its own angle; name -> number of tasks.
LONG_STREAMS = {"permuted_mnist": 10, "permuted_mnist_20": 20,
                "rotated_mnist": 10, "rotated_mnist_20": 20}
#: Split MNIST with the inputs of pair k multiplied by ``SCALED_MNIST_SCALES[k]``: tasks whose
#: importance totals S_t differ by design (about 100x), where alpha-scaling has room to act.
SCALED_MNIST_SCALES = (1.0, 0.1, 3.0, 0.3, 10.0)
BENCHMARKS = ("split_mnist", "split_cifar10", "split_cifar10_jpeg", "split_digits",
              "split_mnist_hsu2018", "split_mnist_scaled", *LONG_STREAMS)
DISPLAY_NAMES = {
    "split_mnist": "Split MNIST",
    "split_cifar10": "Split CIFAR-10",
    "split_cifar10_jpeg": "CIFAR-10 (JPEG q75 copy)",
    "split_digits": "Split digits (scikit-learn, 8x8)",
    "split_mnist_hsu2018": "Split MNIST, Hsu et al. 2018 protocol (32x32, pairs (0,1)...(8,9))",
    "split_mnist_scaled": "Split MNIST, input scale per pair (1, 0.1, 3, 0.3, 10)",
    "permuted_mnist": "Permuted MNIST (10 tasks)",
    "permuted_mnist_20": "Permuted MNIST (20 tasks)",
    "rotated_mnist": "Rotated MNIST (10 tasks, 0-162 degrees)",
    "rotated_mnist_20": "Rotated MNIST (20 tasks, 0-171 degrees)",
}
#: Benchmarks built from data that ships with a package: they read no ``data_root``.
DATA_FREE_BENCHMARKS = ("split_digits",)
#: Benchmark -> its class order (pair k = classes 2k, 2k+1 of it).
CLASS_ORDERS = {"split_mnist": MNIST_CLASS_ORDER, "split_digits": MNIST_CLASS_ORDER,
                "split_cifar10": CIFAR10_CLASS_ORDER, "split_cifar10_jpeg": CIFAR10_CLASS_ORDER,
                "split_mnist_hsu2018": LABEL_ORDER, "split_mnist_scaled": MNIST_CLASS_ORDER}
#: task: multi-head with task labels; class: one growing head; domain: one shared 2-output
#: head, the label being the position within the pair, no task labels.
SCENARIOS = ("task", "class", "domain")
#: The pair the order-sensitivity placements move (pair 0, the reference's task (1,2)).
MOVED_PAIR = 0


def n_tasks(name: str) -> int:
    """The number of tasks of benchmark ``name``."""
    return LONG_STREAMS.get(name, N_TASKS)


def classes_per_task(name: str) -> int:
    """Outputs of one task's head: 10 on the long streams, 2 on the pair splits."""
    return 10 if name in LONG_STREAMS else 2


def check_scenario(name: str, scenario: str, param: str = "scenario") -> str:
    """The long streams are domain-incremental only (``param``: the key or flag named)."""
    if name in LONG_STREAMS and scenario != "domain":
        raise ValueError(f"{param}: {name} is domain-incremental (one shared 10-way head); "
                         f"expected 'domain', got {scenario!r}")
    return scenario


def class_order(name: str, task_order: Sequence[int] | None = None) -> list[int]:
    """The ``fixed_class_order`` giving pairs in ``task_order`` (pair indices 0..4)."""
    base = CLASS_ORDERS[name]
    order = check_task_order(task_order)
    return [c for k in order for c in base[2 * k: 2 * k + 2]]


def check_task_order(task_order: Sequence[int] | None, n: int = N_TASKS) -> list[int]:
    """A permutation of the task (pair) indices ``0..n-1`` (None: the reference order)."""
    if task_order is None:
        return list(range(n))
    order = list(task_order)
    if sorted(order) != list(range(n)) or any(isinstance(k, bool) for k in order):
        raise ValueError(
            f"task_order: expected a permutation of the task indices 0..{n - 1}, "
            f"got {task_order!r}"
        )
    return [int(k) for k in order]


def placements(moved: int = MOVED_PAIR, n_tasks: int = N_TASKS) -> list[list[int]]:
    """The task orders that move pair ``moved`` from first to last place, others in order."""
    rest = [k for k in range(n_tasks) if k != moved]
    return [rest[:p] + [moved] + rest[p:] for p in range(n_tasks)]


def pair_classes(name: str, pair: int) -> tuple[int, int]:
    """Original class ids of pair ``pair``."""
    base = CLASS_ORDERS[name]
    return base[2 * pair], base[2 * pair + 1]
