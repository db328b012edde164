"""Quickstart: AlphaMASPlugin in Avalanche's Naive strategy on task-incremental Split
MNIST with the reference tasks (1,2) (3,4) (5,6) (7,8) (9,0).

    python examples/quickstart.py --data-root ../shared/data    # this repository's test data
    python examples/quickstart.py --data-root data --download   # fetch MNIST (needs internet)

Avalanche's InteractiveLogger shows a progress bar per epoch and the metrics after each
evaluation; the last lines are a table per task (final accuracy, forgetting, alpha_t).
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd
import torch
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.logging import InteractiveLogger
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from alpha_mas_avalanche import AlphaMASPlugin
from alpha_mas_avalanche.data import DatasetNotFoundError, check_mnist, resolve_data_root
from alpha_mas_avalanche.models import make_model

PAIRS = ["(1,2)", "(3,4)", "(5,6)", "(7,8)", "(9,0)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None,
                        help="folder holding mnist/MNIST/raw (default: $ALPHA_MAS_DATA_ROOT or ./data)")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download MNIST into <data-root>/mnist if it is missing")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per task")
    parser.add_argument("--lambda-reg", type=float, default=5.0,
                        help="sum of the alphas (the reference sweeps N, 1.5N, 2N, 3N; N = 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    if args.download:
        mnist_root = resolve_data_root(args.data_root) / "mnist"
    else:
        try:
            mnist_root = check_mnist(args.data_root)
        except DatasetNotFoundError as err:
            print(f"quickstart: {err}", file=sys.stderr)
            return 2

    torch.manual_seed(0)
    benchmark = SplitMNIST(n_experiences=5, return_task_id=True, seed=0,
                           fixed_class_order=[1, 2, 3, 4, 5, 6, 7, 8, 9, 0],
                           class_ids_from_zero_in_each_exp=True, dataset_root=mnist_root)
    model = make_model("mlp", input_shape=(1, 28, 28))  # 784-400-400, one head per task
    alpha_mas = AlphaMASPlugin(lambda_reg=args.lambda_reg)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                 forgetting_metrics(experience=True, stream=True),
                                 loggers=[InteractiveLogger()])
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128,
                     train_epochs=args.epochs, eval_mb_size=512, device=args.device,
                     plugins=[alpha_mas], evaluator=evaluator)

    for experience in benchmark.train_stream:
        strategy.train(experience)
        metrics = strategy.eval(benchmark.test_stream)  # after every task: forgetting needs it

    table = pd.DataFrame({
        "task": PAIRS,
        "final accuracy": [metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}"]
                           for t in range(5)],
        "forgetting": [metrics.get(f"ExperienceForgetting/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}",
                                   float("nan")) for t in range(5)],
        "alpha": alpha_mas.alphas,
    })
    print(table.to_string(index=False, float_format="%.4f"))
    print(f"average accuracy {metrics['Top1_Acc_Stream/eval_phase/test_stream/Task004']:.4f}, "
          f"average forgetting {metrics['StreamForgetting/eval_phase/test_stream']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
