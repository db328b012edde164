"""Quickstart: AlphaMASPlugin in Avalanche's Naive strategy on task-incremental Split
MNIST with the reference tasks (1,2) (3,4) (5,6) (7,8) (9,0).

    python examples/quickstart.py --data-root ../shared/data
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from alpha_mas_avalanche import AlphaMASPlugin
from alpha_mas_avalanche.data import check_mnist
from alpha_mas_avalanche.models import make_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None,
                        help="folder holding mnist/MNIST/raw (default: $ALPHA_MAS_DATA_ROOT or ./data)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per task")
    parser.add_argument("--lambda-reg", type=float, default=5.0,
                        help="sum of the alphas (the reference sweeps N, 1.5N, 2N, 3N; N = 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    benchmark = SplitMNIST(n_experiences=5, return_task_id=True, seed=0,
                           fixed_class_order=[1, 2, 3, 4, 5, 6, 7, 8, 9, 0],
                           class_ids_from_zero_in_each_exp=True,
                           dataset_root=check_mnist(args.data_root))
    model = make_model("mlp", input_shape=(1, 28, 28))  # 784-400-400, one head per task
    alpha_mas = AlphaMASPlugin(lambda_reg=args.lambda_reg)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                 forgetting_metrics(experience=True, stream=True), loggers=[])
    strategy = Naive(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_mb_size=128,
                     train_epochs=args.epochs, eval_mb_size=512, device=args.device,
                     plugins=[alpha_mas], evaluator=evaluator)

    for experience in benchmark.train_stream:
        strategy.train(experience)
        metrics = strategy.eval(benchmark.test_stream)  # after every task: forgetting needs it

    pairs = ["(1,2)", "(3,4)", "(5,6)", "(7,8)", "(9,0)"]
    table = pd.DataFrame({
        "task": pairs,
        "final accuracy": [metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}"]
                           for t in range(5)],
        "forgetting": [metrics.get(f"ExperienceForgetting/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}",
                                   float("nan")) for t in range(5)],
        "alpha": alpha_mas.alphas,
    })
    print(table.to_string(index=False, float_format="%.4f"))
    print(f"average accuracy {metrics['Top1_Acc_Stream/eval_phase/test_stream/Task004']:.4f}, "
          f"average forgetting {metrics['StreamForgetting/eval_phase/test_stream']:.4f}")


if __name__ == "__main__":
    main()
