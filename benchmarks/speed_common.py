"""Shared pieces of the speed/memory benchmarks: thread count, data, models, timing.

The benchmarks run competitors side by side in one process, interleaved (the order rotates
every round), and report medians with the warm-up rounds excluded, so ratios stay
meaningful on a noisy shared machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.models.utils import avalanche_model_adaptation

from alpha_mas_avalanche.models import make_model

REPO = Path(__file__).resolve().parents[1]
CLASS_ORDER = {"mlp": [1, 2, 3, 4, 5, 6, 7, 8, 9, 0], "cnn": [2, 1, 3, 4, 5, 6, 7, 8, 9, 0]}
DATA_NAMES = {"mlp": "Split MNIST", "cnn": "Split CIFAR-10 (JPEG q75 copy)"}


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--threads", type=int, default=1, help=(
        "torch CPU threads (default 1: on a busy shared 2-core machine, 2 OpenMP threads "
        "made steps up to 50x slower and ratios meaningless)"))
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run_per_model(parser: argparse.ArgumentParser, run: Callable[[str, argparse.Namespace], None]) -> None:
    """Parse the arguments, set the thread count, run ``run(model, args)`` for each model."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        run(name, args)


def data_root() -> Path:
    return Path(os.environ.get("ALPHA_MAS_DATA_ROOT", REPO.parent / "shared" / "data"))


def _mnist(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    from torchvision.datasets import MNIST

    root = data_root() / "mnist"
    try:
        train = MNIST(str(root), train=True, download=False)
    except RuntimeError:
        return torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)), "synthetic N(0,1) inputs"
    x = (train.data[:n].float().div(255).unsqueeze(1) - 0.1307) / 0.3081
    return x, train.targets[:n].clone(), DATA_NAMES["mlp"]


def _cifar10_jpeg(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    from torchvision.io import decode_jpeg

    path = data_root() / "cifar10" / "lossy_jpeg_fallback" / "cifar10_jpeg_q75.npz"
    if not path.exists():
        return torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,)), "synthetic N(0,1) inputs"
    z = np.load(path)
    buf, off = z["train_jpeg"], z["train_offsets"]
    images = decode_jpeg([torch.from_numpy(buf[off[i]:off[i + 1]].copy()) for i in range(n)])
    x = torch.stack(images).float().div(255)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    return (x - mean) / std, torch.from_numpy(z["y_train"][:n]).long(), DATA_NAMES["cnn"]


def task_benchmark(model_name: str, n_train: int, seed: int = 0):
    """Task-incremental 5 x 2-class split of the first ``n_train`` training images, from
    in-memory tensors (so data loading costs the same, and little, for every method)."""
    x, y, label = (_mnist if model_name == "mlp" else _cifar10_jpeg)(n_train)
    train = _make_taskaware_tensor_classification_dataset(x, y)
    test = _make_taskaware_tensor_classification_dataset(x[:50], y[:50])
    bm = nc_benchmark(train, test, n_experiences=5, task_labels=True, seed=seed,
                      fixed_class_order=CLASS_ORDER[model_name],
                      class_ids_from_zero_in_each_exp=True)
    bm.data_label = label
    return bm


def task_model(model_name: str, bm, device: str = "cpu") -> torch.nn.Module:
    """The project's model (``alpha_mas_avalanche.models``) with all 5 heads created."""
    shape = (1, 28, 28) if model_name == "mlp" else (3, 32, 32)
    model = make_model(model_name, input_shape=shape, scenario="task")
    for exp in bm.train_stream:
        avalanche_model_adaptation(model, exp)
    return model.to(device)


def interleaved_medians(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """Wall times (s) of each variant over ``repeats`` rounds after ``warmup`` rounds; the
    variants run interleaved, in an order rotated every round."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            variants[name]()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table (pasteable into README)."""
    cells = [[str(c) for c in row] for row in [headers] + rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))


def cuda_sync(device: str) -> Callable[[], None]:
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None
