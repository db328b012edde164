"""How Avalanche's batched EWC Fisher compares in scale with Hsu et al. (2018)'s per-sample one.

Trains the Hsu et al. MLP (1024-400-400, one head per task) on the first pair of their
split MNIST protocol (4 epochs, Adam 1e-3, batch 128), then computes on that task's
training data:

- Avalanche 0.6's ``EWCPlugin.compute_importances`` (squared gradient of each minibatch's
  mean loss, batch 128, true labels, averaged over minibatches);
- Hsu et al.'s estimate (GT-RIPL/Continual-Learning-Benchmark ``agents/regularization.py``,
  ``EWC_mnist``): batch size 1, the model's own argmax label, squared gradient averaged
  over samples;
- the same per-sample estimate with the true labels (the empirical Fisher).

Both penalties are ``coef * sum F (theta - theta*)^2``, so the ratio of the totals is the
factor between their ``reg_coef`` and Avalanche's ``ewc_lambda`` for the same penalty.

    python examples/fisher_scale.py --data-root ../shared/data
"""
from __future__ import annotations

import argparse

import torch
from avalanche.models import avalanche_forward
from avalanche.training import Naive
from avalanche.training.plugins import EWCPlugin
from torch.utils.data import DataLoader

from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.models import make_model


def per_sample_fisher(model: torch.nn.Module, dataset, labels: str) -> float:
    """Sum over parameters of the mean squared per-sample gradient (``labels``: "argmax" or "true")."""
    model.eval()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    loader = DataLoader(dataset, batch_size=1)
    criterion = torch.nn.CrossEntropyLoss()
    for x, y, t in loader:
        model.zero_grad()
        out = avalanche_forward(model, x, t)
        target = out.argmax(1) if labels == "argmax" else y
        criterion(out, target).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                total[n] += p.grad ** 2
    return sum(v.sum().item() for v in total.values()) / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    bm = make_benchmark("split_mnist_hsu2018", data_root=args.data_root, seed=args.seed)
    experience = bm.train_stream[0]
    model = make_model("mlp", input_shape=(1, 32, 32), scenario="task")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    strategy = Naive(model, optimizer, train_mb_size=128, train_epochs=4, evaluator=None)
    strategy.train(experience)

    batched = EWCPlugin(ewc_lambda=1.0).compute_importances(
        model, torch.nn.CrossEntropyLoss(), optimizer, experience.dataset, "cpu", 128)
    batched_total = sum(imp.data.sum().item() for imp in batched.values())
    argmax_total = per_sample_fisher(model, experience.dataset, "argmax")
    true_total = per_sample_fisher(model, experience.dataset, "true")
    print(f"task 0 ({len(experience.dataset)} training images), seed {args.seed}")
    print(f"Avalanche batched Fisher (batch 128, true labels): total {batched_total:.4g}")
    print(f"per-sample Fisher, argmax labels (Hsu et al.):     total {argmax_total:.4g}"
          f"  ratio to batched {argmax_total / batched_total:.1f}x")
    print(f"per-sample Fisher, true labels (empirical):         total {true_total:.4g}"
          f"  ratio to batched {true_total / batched_total:.1f}x")
    print(f"Hsu et al.'s reg_coef 100 (EWC) / 700 (online EWC) correspond to Avalanche "
          f"ewc_lambda ~{100 * argmax_total / batched_total:.3g} / {700 * argmax_total / batched_total:.3g}")


if __name__ == "__main__":
    main()
