"""AlphaMASPlugin in Avalanche's Naive strategy on task-incremental Split MNIST, logged
through Avalanche's own WandBLogger, with the plugin's penalty, alphas and S_t reported by
``PenaltyMetric``. README's example is this file from ``import torch`` to ``first``.

    WANDB_MODE=offline python examples/plugin_wandb.py --data-root ../shared/data
    WANDB_MODE=offline python examples/plugin_wandb.py --data-root ../shared/data --train-samples 256
"""
from __future__ import annotations

import argparse

import torch
import wandb
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import InteractiveLogger, WandBLogger
from avalanche.models import MTSimpleMLP
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from alpha_mas_avalanche import AlphaMASPlugin, PenaltyMetric


def run(data_root: str, epochs: int = 1, train_samples: int | None = None) -> dict:
    """Train on the 5 tasks in turn; Avalanche's metrics after the last one."""
    benchmark = SplitMNIST(n_experiences=5, return_task_id=True, seed=0,
                           class_ids_from_zero_in_each_exp=True, dataset_root=f"{data_root}/mnist")
    model = MTSimpleMLP(input_size=28 * 28, hidden_size=400)
    alpha_mas = AlphaMASPlugin(lambda_reg=5.0)  # lambda = N = 5 tasks: see "Choosing lambda_reg"
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True), PenaltyMetric(),
        loggers=[InteractiveLogger(), WandBLogger(project_name="alpha-mas-example")])
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128,
                     train_epochs=epochs, eval_mb_size=512, plugins=[alpha_mas], evaluator=evaluator)
    tests = [first(e, train_samples) for e in benchmark.test_stream]
    for experience in benchmark.train_stream:
        strategy.train(first(experience, train_samples))
        metrics = strategy.eval(tests)
    wandb.finish()  # Avalanche's WandBLogger leaves the run open
    print("alphas:", [round(a, 4) for a in alpha_mas.alphas])
    return metrics


def first(experience, samples: int | None):
    """The experience on its first ``samples`` samples (None: all of them)."""
    if samples is not None:
        experience.dataset = experience.dataset.subset(range(samples))
    return experience


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist/MNIST/raw")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, help="first N samples of each experience")
    args = parser.parse_args()
    final = run(args.data_root, args.epochs, args.train_samples)
    print(f"average accuracy {final['Top1_Acc_Stream/eval_phase/test_stream/Task004']:.4f}")
