"""Exact per-sample MAS importance vs Avalanche's MASPlugin importance pass.

Same model, same data (the first training experience, in-memory tensors), same batch size.
Times are medians over interleaved repeats, warm-up excluded; the ratio column divides by
Avalanche ``MASPlugin._get_importance`` (its batch approximation of MAS importance).

    python benchmarks/importance_speed.py                      # MLP and CNN, 1 thread
    python benchmarks/importance_speed.py --models mlp --repeats 9 --train-images 20000
"""
from __future__ import annotations

import argparse

import torch
from avalanche.training import Naive
from avalanche.training.plugins import MASPlugin

from alpha_mas_avalanche.importance import _importance, mas_importance
from speed_common import (
    common_arguments, cuda_sync, interleaved_medians, median, print_table, run_per_model,
    task_benchmark, task_model,
)

DEFAULT_TRAIN_IMAGES = {"mlp": 10000, "cnn": 2560}  # first experience: about 1/5 of these


def run(model_name: str, args) -> None:
    torch.manual_seed(args.seed)
    bm = task_benchmark(model_name, args.train_images or DEFAULT_TRAIN_IMAGES[model_name], args.seed)
    model = task_model(model_name, bm, args.device)
    exp = bm.train_stream[0]
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=0.01),
                     train_mb_size=args.batch_size, device=args.device, evaluator=None)
    strategy.experience = exp
    avalanche_plugin = MASPlugin()
    common = dict(task_label=0, batch_size=args.batch_size, max_samples=None, device=args.device)

    variants = {
        "Avalanche MASPlugin._get_importance (batch approx.)":
            lambda: avalanche_plugin._get_importance(strategy),
        "AlphaMAS mas_importance(exact=True) (fast rules)":
            lambda: mas_importance(model, exp.dataset, task_label=0, batch_size=args.batch_size),
        "AlphaMAS mas_importance(exact=False) (batch approx.)":
            lambda: mas_importance(model, exp.dataset, task_label=0, exact=False,
                                   batch_size=args.batch_size),
    }
    if args.generic:
        variants["AlphaMAS exact, generic torch.func path only"] = \
            lambda: _importance(model, exp.dataset, method="generic", **common)
    times = interleaved_medians(variants, args.repeats, args.warmup, cuda_sync(args.device))

    fast = mas_importance(model, exp.dataset, task_label=0, batch_size=args.batch_size)
    reference = _importance(model, exp.dataset, method="generic", **common)
    worst = max(float(((fast[n] - reference[n]).abs().max() / reference[n].abs().max().clamp_min(1e-30)))
                for n in fast)

    base_times = times[next(iter(variants))]
    base = median(base_times)
    print(f"\n### {model_name.upper()} on {bm.data_label}: {len(exp.dataset)} samples "
          f"(experience 0), batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{args.device}, {args.repeats} repeats")
    rows = [[name, f"{median(t) * 1e3:.1f}", f"{min(t) * 1e3:.1f}", f"{median(t) / base:.2f}x",
             f"{median([a / b for a, b in zip(t, base_times)]):.2f}x"]
            for name, t in times.items()]
    print_table(["method", "median ms", "min ms", "median / Avalanche median",
                 "median of per-round ratios"], rows)
    print(f"fast vs generic exact path (float32): max |diff| / max |value| = {worst:.1e}")


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=None,
                        help="training images to split into 5 tasks (default: mlp 10000, cnn 2560)")
    parser.add_argument("--generic", action="store_true",
                        help="also time the generic torch.func path (slow)")
    run_per_model(parser, run)


if __name__ == "__main__":
    main()
