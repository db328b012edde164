"""Passes over the parameters made by the analytic penalty step, the memory floor they set,
and the training-step ratio AlphaMAS / Naive on the MLP, measured side by side.

Passes are counted structurally: a ``TorchDispatchMode`` sees every aten op that
``ConsolidatedPenalty.add_gradient_`` issues and adds up the elements each op reads (its
tensor inputs, ``out=`` excluded) and writes (its outputs, in-place ones included); the sum
over the number of parameters is the number of parameter-sized passes. The floor is those
bytes over the machine's streaming bandwidth (a large ``copy_``, measured in the same run).

    python benchmarks/penalty_passes.py --rounds 15
"""
from __future__ import annotations

import argparse
import statistics
import time

import penalty_overhead
import torch
from speed_common import common_arguments
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from alpha_mas_avalanche.parameters import trainable_parameters

#: aten ops that move no data (views, allocation without a fill)
NO_TRAFFIC = {"view", "_unsafe_view", "reshape", "alias", "detach", "as_strided", "expand",
              "t", "empty", "empty_like", "empty_strided"}


class ElementTraffic(TorchDispatchMode):
    """Elements read and written by every aten op issued inside the mode (views and
    allocations move none), and the op names."""

    def __init__(self) -> None:
        super().__init__()
        self.read = self.written = 0
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append(func.__name__)
        if func.overloadpacket.__name__ in NO_TRAFFIC:
            return out
        inputs = tree_leaves((args, {k: v for k, v in kwargs.items() if k != "out"}))
        self.read += sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))
        self.written += sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def count_passes(plugin, model) -> tuple[float, int, list[str]]:
    """(passes, bytes per step, aten ops) of one ``add_gradient_`` with ``.grad`` set."""
    params = trainable_parameters(model)
    for p in params.values():
        p.grad = torch.zeros_like(p)
    numel = sum(p.numel() for p in params.values())
    plugin.penalty.add_gradient_(params)  # the work tensors are made on the first call
    with ElementTraffic() as traffic:
        plugin.penalty.add_gradient_(params)
    elements = traffic.read + traffic.written
    itemsize = next(iter(params.values())).element_size()
    return elements / numel, elements * itemsize, traffic.ops


def bandwidth(nbytes: int = 64 << 20, repeats: int = 9) -> float:
    """Streaming bandwidth in bytes/s: median of ``dst.copy_(src)`` (read + write) times."""
    src = torch.rand(nbytes // 4)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return 2 * nbytes / statistics.median(times)


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=None)
    parser.set_defaults(models=["mlp"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    penalty_overhead.VARIANTS = ("Naive (no plugin)", "AlphaMAS analytic (default)")
    for name in args.models:
        bm = penalty_overhead.task_benchmark(
            name, args.train_images or penalty_overhead.DEFAULT_TRAIN_IMAGES[name], args.seed)
        model = penalty_overhead.task_model(name, bm, args.device)
        plugin = penalty_overhead._with_previous_tasks("AlphaMAS analytic (default)", model, args.seed)
        passes, nbytes, ops = count_passes(plugin, model)
        rate = bandwidth()
        print(f"\n### {name.upper()}: analytic penalty step")
        print(f"aten ops issued: {len(ops)} ({', '.join(sorted(set(ops)))})")
        print(f"passes over the parameters: {passes:.2f} ({nbytes / 1e6:.2f} MB per step)")
        print(f"streaming bandwidth (copy_): {rate / 1e9:.2f} GB/s; memory floor of these "
              f"passes: {nbytes / rate * 1e3:.3f} ms; of the fused minimum (5 passes: read "
              f"theta, center, weight, grad; write grad): {5 * nbytes / passes / rate * 1e3:.3f} ms")
        penalty_overhead.run(name, args)


if __name__ == "__main__":
    main()
