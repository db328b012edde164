"""Training-step overhead of the regulariser after 4 consolidated tasks, beside Avalanche's
MASPlugin and EWCPlugin(mode="separate").

Real ``avalanche.training.Naive`` training iterations (forward, loss, backward, plugin
hooks, SGD step, loss/accuracy metrics) on the 5th task's data. Each variant has its own
copy of the same model and its plugin holds 4 tasks of (synthetic, random) importances and
anchors. Variants run interleaved, one epoch each per round (the order rotates every
round); a step's time is taken from ``before_training_iteration`` to
``after_training_iteration``. Reported: the median step time, and the median over rounds
of each round's ``median step / median Naive step`` (warm-up rounds excluded).

    python benchmarks/penalty_overhead.py                 # MLP and CNN, 1 thread
    python benchmarks/penalty_overhead.py --models mlp --rounds 21 --batch-size 256
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, EWCPlugin, MASPlugin
from avalanche.training.utils import copy_params_dict, zerolike_params_dict

from alpha_mas_avalanche import AlphaMASPlugin
from speed_common import common_arguments, cuda_sync, print_table, run_per_model, task_benchmark, task_model

PREVIOUS_TASKS = 4
DEFAULT_TRAIN_IMAGES = {"mlp": 10000, "cnn": 2560}  # 5th task: about 1/5 of these


class StepTimer(SupervisedPlugin):
    """Wall time of every training iteration."""

    def __init__(self, sync) -> None:
        super().__init__()
        self.sync, self.times, self._start = sync, [], 0.0

    def before_training_iteration(self, strategy, **kwargs):
        self.sync()
        self._start = time.perf_counter()

    def after_training_iteration(self, strategy, **kwargs):
        self.sync()
        self.times.append(time.perf_counter() - self._start)


def _random_like(model: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {n: torch.rand(p.shape, generator=generator).to(p) for n, p in model.named_parameters()}


def _with_previous_tasks(name: str, model: torch.nn.Module, seed: int):
    """The plugin of variant ``name`` in the state it has after 4 tasks (None for Naive)."""
    gen = torch.Generator().manual_seed(seed)
    if name == "Naive (no plugin)":
        return None
    if name.startswith("AlphaMAS"):
        options = {"penalty_gradient": "autograd" if "autograd" in name else "analytic"}
        if "last epochs" in name:  # exact importance of every training batch, the last-epochs variant
            options.update(importance_from="last_epochs", importance_epochs=1)
        plugin = AlphaMASPlugin(lambda_reg=1.0, **options)
        for _ in range(PREVIOUS_TASKS):
            anchor = {n: p.detach() + 0.01 * torch.randn(p.shape, generator=gen).to(p)
                      for n, p in model.named_parameters()}
            plugin.penalty.add_task(_random_like(model, gen), anchor)
        return plugin
    if name.startswith("Avalanche MASPlugin"):
        plugin = MASPlugin(lambda_reg=1.0)
        plugin.params = dict(copy_params_dict(model))
        plugin.importance = dict(zerolike_params_dict(model))
        for n, omega in _random_like(model, gen).items():
            plugin.importance[n].data = omega
        return plugin
    plugin = EWCPlugin(ewc_lambda=1.0, mode="separate")
    for t in range(PREVIOUS_TASKS):
        plugin.saved_params[t] = copy_params_dict(model)
        plugin.importances[t] = zerolike_params_dict(model)
        for n, fisher in _random_like(model, gen).items():
            plugin.importances[t][n].data = fisher
    return plugin


VARIANTS = ("Naive (no plugin)", "AlphaMAS analytic (default)", "AlphaMAS autograd",
            "AlphaMAS analytic, importance over last epochs", "Avalanche MASPlugin",
            "Avalanche EWCPlugin(separate)")


def run(model_name: str, args) -> None:
    torch.manual_seed(args.seed)
    bm = task_benchmark(model_name, args.train_images or DEFAULT_TRAIN_IMAGES[model_name], args.seed)
    base = task_model(model_name, bm, args.device)
    exp = bm.train_stream[PREVIOUS_TASKS]
    sync = cuda_sync(args.device)
    strategies, timers = {}, {}
    for name in VARIANTS:
        model = copy.deepcopy(base)
        timers[name] = StepTimer(sync)
        plugins = [timers[name]]
        plugin = _with_previous_tasks(name, model, args.seed)
        if plugin is not None:
            plugins.insert(0, plugin)
        evaluator = EvaluationPlugin(loss_metrics(epoch=True), accuracy_metrics(epoch=True),
                                     loggers=[])
        strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=args.lr),
                         train_mb_size=args.batch_size, train_epochs=1, device=args.device,
                         plugins=plugins, evaluator=evaluator)
        strategy.clock.train_exp_counter = PREVIOUS_TASKS  # what MAS/EWC check
        strategy.experience = exp
        strategy.is_training = True
        strategy.model.train()
        strategy._before_training_exp(drop_last=True)  # dataloader, model/optimizer setup
        strategies[name] = strategy

    per_round: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for round_ in range(args.warmup + args.rounds):
        shift = round_ % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            timers[name].times.clear()
            strategies[name].training_epoch()
            if round_ >= args.warmup:
                per_round[name].append(statistics.median(timers[name].times))
    naive = per_round[VARIANTS[0]]
    n_steps = len(timers[VARIANTS[0]].times)
    print(f"\n### {model_name.upper()} on {bm.data_label}: training step after {PREVIOUS_TASKS} "
          f"consolidated tasks, batch {args.batch_size}, {n_steps} steps x {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, {args.device}")
    rows = []
    for name in VARIANTS:
        ratios = [t / b for t, b in zip(per_round[name], naive)]
        rows.append([name, f"{statistics.median(per_round[name]) * 1e3:.2f}",
                     f"{statistics.median(ratios):.3f}x",
                     f"{min(ratios):.3f}x - {max(ratios):.3f}x"])
    print_table(["variant", "median step ms", "step / Naive step (median of rounds)",
                 "range over rounds"], rows)


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=None,
                        help="training images to split into 5 tasks (default: mlp 10000, cnn 2560)")
    run_per_model(parser, run)


if __name__ == "__main__":
    main()
