"""Where each layer of the CIFAR CNN moves while it learns a second task, with and without L2.

On Split CIFAR-10 (JPEG q75 copy) the L2 baseline's validation accuracy is worse than
fine-tuning for mid-range strengths (results/split_cifar10_jpeg_baselines). This script
looks at why, on the first two tasks of the reference order (bird, automobile) then
(cat, deer), with the grid's settings (the CNN at width 32, Adam 1e-3, batch 64, 3 epochs,
10 % of each task held out, seed 0): for each ``--lambdas`` value (0 = Naive) it prints
task 1's validation accuracy before and after task 2, task 2's, and each trunk layer's
drift ``||theta - theta_1||`` (absolute and relative to ``||theta_1||``) over task 2.

    python examples/l2_drift.py --data-root ../shared/data --lambdas 0 0.1
"""
from __future__ import annotations

import argparse

import torch
from avalanche.training import Naive

from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.experiment.heldout import dataset_accuracy
from alpha_mas_avalanche.experiment.train import seed_everything
from alpha_mas_avalanche.models import make_model
from alpha_mas_avalanche.plugins import L2Plugin


def accuracy(model: torch.nn.Module, dataset) -> float:
    """Top-1 accuracy of ``model`` in eval mode on ``dataset`` with its eval transforms
    (no random crop or flip), as the harness's held-out evaluation."""
    model.eval()
    return dataset_accuracy(model, dataset.eval(), batch_size=512, device="cpu")


def drift_over_second_task(bm, lambda_reg: float, seed: int) -> None:
    seed_everything(seed)
    model = make_model("cnn", input_shape=(3, 32, 32))
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=64, train_epochs=3,
                     eval_mb_size=512, plugins=[L2Plugin(lambda_reg)] if lambda_reg > 0 else [],
                     evaluator=None, eval_every=-1)
    strategy.train(bm.train_stream[0])
    before = accuracy(model, bm.valid_stream[0].dataset)
    after_task1 = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy.train(bm.train_stream[1])
    print(f"{'Naive' if lambda_reg == 0 else f'L2 lambda={lambda_reg:g}'}: task 1 validation "
          f"accuracy {before:.3f} after task 1, {accuracy(model, bm.valid_stream[0].dataset):.3f} "
          f"after task 2; task 2 {accuracy(model, bm.valid_stream[1].dataset):.3f}")
    for name, param in model.named_parameters():
        if name.startswith("trunk."):
            moved = float((param.detach() - after_task1[name]).norm())
            print(f"  {name:16s} {param.numel():8d} params  drift {moved:8.4f}  "
                  f"relative {moved / float(after_task1[name].norm()):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="folder holding cifar10/ (the JPEG q75 copy)")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.1],
                        help="L2 strengths to compare, each >= 0 (0 = Naive fine-tuning)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if any(not lam >= 0 for lam in args.lambdas):  # rejects NaN too
        parser.error(f"--lambdas: each value must be >= 0 (0 = Naive), got {args.lambdas}")
    torch.set_num_threads(1)
    bm = make_benchmark("split_cifar10_jpeg", data_root=args.data_root, seed=args.seed,
                        task_order=[0, 1, 2, 3, 4])
    for lambda_reg in args.lambdas:
        drift_over_second_task(bm, lambda_reg, args.seed)


if __name__ == "__main__":
    main()
