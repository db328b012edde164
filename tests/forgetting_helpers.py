"""Shared pieces of the IMM and EBLL tests on the digits tasks: Naive with a 64-unit
multi-head MLP, a task's accuracy, the first task's forgetting over three seeds, and a run
checkpointed with Avalanche and resumed next to an uninterrupted one."""
from __future__ import annotations

import torch
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from digits import MultiHeadMLP, digits_benchmark

SEEDS = (0, 1, 2)


def make_strategy(plugins, seed=0, epochs=4, device="cpu"):
    torch.manual_seed(seed)
    model = MultiHeadMLP(hidden=64)
    return Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=32,
                 train_epochs=epochs, device=device, plugins=plugins,
                 evaluator=EvaluationPlugin(loggers=[]))


def task_accuracy(strategy, bm, task: int) -> float:
    strategy.model.eval()
    exp = bm.test_stream[task]
    x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))]).to(strategy.device)
    y = torch.tensor([exp.dataset[i][1] for i in range(len(exp.dataset))]).to(strategy.device)
    with torch.no_grad():
        pred = strategy.model(x, task).argmax(1)
    return float((pred == y).float().mean())


def mean_first_task_forgetting(make_plugins, device: str = "cpu") -> float:
    """Over SEEDS: accuracy on task 0 right after it minus after all five experiences."""
    forgetting = []
    for seed in SEEDS:
        bm = digits_benchmark(seed=seed)
        strategy = make_strategy(make_plugins(), seed=seed, device=device)
        strategy.train(bm.train_stream[0])
        after_first = task_accuracy(strategy, bm, 0)
        for exp in bm.train_stream[1:]:
            strategy.train(exp)
        forgetting.append(after_first - task_accuracy(strategy, bm, 0))
    return sum(forgetting) / len(forgetting)


def checkpointed_and_uninterrupted(make_plugin, tmp_path, n_experiences: int, device: str = "cpu"):
    """The same training on the digits tasks twice: uninterrupted, and with an Avalanche
    checkpoint after each of the first two experiences, resumed in a fresh strategy (other
    seed) for the rest; returns (uninterrupted, resumed) strategies."""
    def run(resume: bool):
        bm = digits_benchmark(seed=0)
        strategy = make_strategy([make_plugin()], epochs=1, device=device)
        fname = tmp_path / "ckpt.pkl"
        for exp in bm.train_stream[:2]:
            strategy.train(exp)
            if resume:
                save_checkpoint(strategy, fname)
        if resume:
            strategy = make_strategy([make_plugin()], epochs=1, seed=1, device=device)
            strategy, next_exp = maybe_load_checkpoint(strategy, fname)
            assert next_exp == 2
        for exp in bm.train_stream[2:n_experiences]:
            strategy.train(exp)
        return strategy

    uninterrupted, resumed = run(False), run(True)
    for (n, a), (_, b) in zip(uninterrupted.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(a, b, msg=n)
    return uninterrupted, resumed
