"""Avalanche's EWC on permuted MNIST under continual-learning-baselines' own protocol, to put
its published target (final mean accuracy 0.83, ``tests/target_results.csv``) beside a run
made here.

The protocol, as ContinualAI/continual-learning-baselines ``experiments/permuted_mnist/ewc.py``
gives it: 10 tasks of all 60,000 training images (``PermutedMNIST(10)``: every task
permuted, MNIST normalisation), an MLP 784-512-10 (one hidden layer, ReLU, no dropout),
``avalanche.training.EWC(mode="separate", ewc_lambda=1)``, plain SGD lr 0.001, batch 256,
10 epochs per task; the score is the accuracy over all ten test sets after the last task.
The permutations here are drawn from ``(seed, task)`` (``data/long_streams.py``), not
Avalanche's, and the images are read from the local MNIST files.

    python scripts/ewc_anchor.py --data-root ../shared/data --seeds 0 1 2

Results go to ``results/permuted_mnist_anchor/<strategy>.json``, one entry per seed; a seed
already there is skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUTPUT = REPO / "results" / "permuted_mnist_anchor"
PUBLISHED = {"ewc": 0.83}  # continual-learning-baselines' target for this protocol


def mlp_512() -> nn.Module:
    """784-512-10, ReLU, the baselines' ``MLP(hidden_size=512, hidden_layers=1, drop_rate=0)``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))


def run_seed(strategy_name: str, seed: int, data_root: str, epochs: int) -> dict:
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import EWC, Naive
    from avalanche.training.plugins import EvaluationPlugin

    from alpha_mas_avalanche.data.long_streams import long_stream

    torch.manual_seed(seed)
    bm = long_stream("permuted_mnist", data_root, seed, list(range(10)), validation_size=0.0,
                     train_samples=None, eval_samples=None)
    model = mlp_512()
    options = dict(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.001),
                   criterion=nn.CrossEntropyLoss(), train_mb_size=256, train_epochs=epochs,
                   eval_mb_size=128, device="cpu",
                   evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                              loggers=[]))
    strategy = (EWC(ewc_lambda=1.0, mode="separate", decay_factor=None, **options)
                if strategy_name == "ewc" else Naive(**options))
    started = time.perf_counter()
    for experience in bm.train_stream:
        strategy.train(experience, eval_streams=[])
    metrics = strategy.eval(bm.test_stream)
    per_task = [v for k, v in sorted(metrics.items())
                if k.startswith("Top1_Acc_Exp/eval_phase/test_stream/")]
    stream = [v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream")]
    assert len(per_task) == 10 and len(stream) == 1, sorted(metrics)
    return {"seed": seed, "final_mean_accuracy": stream[0],
            "final_accuracy_per_task": per_task, "wall_time_s": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist/MNIST/raw")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strategies", nargs="+", choices=("ewc", "naive"), default=["ewc"])
    parser.add_argument("--epochs", type=int, default=10, help="per task (the protocol's 10)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: expected an int >= 1, got {args.epochs}")
    torch.set_num_threads(args.threads)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in args.strategies:
        path = OUTPUT / f"{name}{'' if args.epochs == 10 else f'_{args.epochs}epochs'}.json"
        record = json.loads(path.read_text()) if path.is_file() else {
            "protocol": "continual-learning-baselines permuted MNIST: 10 tasks x 60,000 images, "
                        "MLP 784-512-10, SGD lr 0.001, batch 256, EWC separate lambda 1",
            "strategy": name, "epochs_per_task": args.epochs,
            "published_target": PUBLISHED.get(name), "runs": []}
        done = {r["seed"] for r in record["runs"]}
        for seed in args.seeds:
            if seed in done:
                continue
            record["runs"].append(run_seed(name, seed, args.data_root, args.epochs))
            accuracies = [r["final_mean_accuracy"] for r in record["runs"]]
            record["mean_final_accuracy"] = sum(accuracies) / len(accuracies)
            partial = path.with_suffix(".json.tmp")
            partial.write_text(json.dumps(record, indent=1))
            os.replace(partial, path)  # a finished seed is never lost
            print(f"{name} seed {seed}: {record['runs'][-1]['final_mean_accuracy']:.4f} "
                  f"({record['runs'][-1]['wall_time_s']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
