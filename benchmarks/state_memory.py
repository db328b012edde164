"""Regulariser state after 5, 20 and 100 consolidated tasks: AlphaMAS (consolidated
quadratic) beside a per-task layout and Avalanche's MASPlugin / EWCPlugin(mode="separate").

Every plugin is driven through its real consolidation code (``AlphaMASPlugin.consolidate``,
Avalanche's ``after_training_exp``) on a tiny experience of real data, so the numbers are
the bytes the plugins actually keep (tensor storages reachable from the plugin, each
counted once). The per-task layout is what storing every task's ``Omega_t`` and anchor
(needed to re-weight with alpha_t without consolidation) would take: 2 tensors per
parameter per task.

    python benchmarks/state_memory.py
    python benchmarks/state_memory.py --tasks 5 20 100 500 --models mlp
"""
from __future__ import annotations

import argparse

import torch
from avalanche.training import Naive
from avalanche.training.plugins import EWCPlugin, MASPlugin

from alpha_mas_avalanche import AlphaMASPlugin
from speed_common import common_arguments, print_table, run_per_model, task_benchmark, task_model


def tensor_bytes(obj, seen_storages=None, seen_objects=None) -> int:
    """Bytes of every tensor storage reachable from ``obj`` (dicts, lists, attributes)."""
    seen_storages = set() if seen_storages is None else seen_storages
    seen_objects = set() if seen_objects is None else seen_objects
    if id(obj) in seen_objects or isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return 0
    seen_objects.add(id(obj))
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        if storage.data_ptr() in seen_storages:
            return 0
        seen_storages.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
        children = list(vars(obj).values())
    else:
        return 0
    return sum(tensor_bytes(c, seen_storages, seen_objects) for c in children)


def python_floats(plugin: AlphaMASPlugin) -> int:
    """Scalars AlphaMAS keeps besides tensors: the totals S_t and the offset."""
    return len(plugin.penalty.totals) + 1


def run(model_name: str, args) -> None:
    torch.manual_seed(args.seed)
    bm = task_benchmark(model_name, 60, args.seed)  # ~12 samples per experience
    model = task_model(model_name, bm, args.device)
    n_params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    plugins = {"AlphaMAS": AlphaMASPlugin(), "Avalanche MASPlugin": MASPlugin(),
               "Avalanche EWCPlugin(separate)": EWCPlugin(ewc_lambda=1.0, mode="separate")}
    strategies = {
        name: Naive(model, torch.optim.SGD(model.parameters(), lr=0.0), train_mb_size=16,
                    device=args.device, plugins=[plugin] if name != "AlphaMAS" else [],
                    evaluator=None)
        for name, plugin in plugins.items()
    }
    rows = []
    done = 0
    for n_tasks in sorted(args.tasks):
        for t in range(done, n_tasks):
            exp = bm.train_stream[t % len(bm.train_stream)]
            for name, plugin in plugins.items():
                strategy = strategies[name]
                if name == "AlphaMAS":
                    plugin.consolidate(model, exp.dataset, task_label=t % 5, device=args.device)
                    continue
                strategy.experience = exp
                strategy.clock.train_exp_counter = t
                plugin.after_training_exp(strategy)
        done = n_tasks
        alpha = plugins["AlphaMAS"]
        assert len(alpha.penalty.totals) == n_tasks
        alpha_bytes = tensor_bytes(alpha)
        row = [n_tasks, f"{alpha_bytes:,} B = {alpha_bytes / param_bytes:g} x parameters "
                        f"+ {python_floats(alpha)} floats",
               f"{2 * n_tasks * param_bytes / 2**20:.2f} MiB"]
        row += [f"{tensor_bytes(plugins[n]) / 2**20:.2f} MiB" for n in list(plugins)[1:]]
        rows.append(row)
    print(f"\n### {model_name.upper()}: {n_params:,} parameters ({param_bytes / 2**20:.2f} MiB); "
          f"2 tensors per parameter = {2 * param_bytes / 2**20:.2f} MiB")
    print_table(["tasks", "AlphaMAS (consolidated)", "per-task layout (Omega_t, anchor_t)",
                 "Avalanche MASPlugin", "Avalanche EWCPlugin(separate)"], rows)


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--tasks", type=int, nargs="+", default=[5, 20, 100])
    run_per_model(parser, run)


if __name__ == "__main__":
    main()
