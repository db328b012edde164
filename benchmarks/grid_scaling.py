"""Wall time of one small comparison grid: in this process, 1 and 2 local worker
processes, and a local Ray instance; printed as speed-ups over 1 local worker.

The grid is real (scikit-learn digits, split like MNIST): AlphaMAS at lambda = N and 2N,
MAS, EWC and Naive, ``--seeds`` seeds, ``--epochs`` epochs per task, plus the single-task
reference runs (one per seed and pair). Every executor is started and warmed up first
(worker processes spawned, torch/Avalanche imported, Ray started) on a one-run grid; the
start-up time is printed apart. Then the executors run the grid in turn, ``--rounds``
times (the order rotates every round), each time into a fresh folder (nothing to resume),
with 1 torch thread per run; reported: the median wall time per executor (no report
writing) and the median of the per-round ratios.

    python benchmarks/grid_scaling.py                  # 3 rounds, 3 seeds, 2 epochs
    python benchmarks/grid_scaling.py --rounds 5 --seeds 4 --no-ray
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from alpha_mas_avalanche.experiment.executors import (
    LocalProcessExecutor,
    RayExecutor,
    available_cpus,
    sequential_executor,
)
from alpha_mas_avalanche.experiment.specs import final_specs, single_task_specs


def grid(output_dir: Path, seeds: int, epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        benchmark="split_digits", epochs=epochs, batch_size=32, seeds=list(range(seeds)),
        methods=[MethodConfig("alpha_mas", sweep={"lambda_multiplier": [1.0, 2.0]}),
                 MethodConfig("mas"), MethodConfig("ewc"), MethodConfig("naive")],
        output_dir=str(output_dir))


def timed(executor, config: ExperimentConfig) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_experiment(config, executor=executor, report=False)
    assert not summary["failed_runs"], summary["failed_runs"]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpus = available_cpus()
    executors = {"in-process": sequential_executor,
                 "local, 1 worker": LocalProcessExecutor(1, 1),
                 "local, 2 workers": LocalProcessExecutor(2, 1)}
    if not args.no_ray:
        import ray

        executors["Ray (local, 2 CPUs)"] = RayExecutor(cpus_per_run=1, init_kwargs={
            "num_cpus": 2, "log_to_driver": False})
    folder = Path(tempfile.mkdtemp(prefix="grid_scaling_"))
    config = grid(folder / "probe", args.seeds, args.epochs)
    n_runs = len(final_specs(config)) + len(single_task_specs(config))
    print(f"CPUs available: {cpus} (os.cpu_count() = {os.cpu_count()}); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"grid: {n_runs} runs (split_digits, {args.seeds} seeds, {args.epochs} epochs/task, "
          f"1 torch thread per run), {args.rounds} rounds")

    startup = {}
    for name, executor in executors.items():  # warm-up: start workers, import, first run
        warm = ExperimentConfig(benchmark="split_digits", epochs=1, seeds=[0], batch_size=32,
                                train_samples_per_task=20, methods=[MethodConfig("naive")],
                                output_dir=str(folder / f"warm-{len(startup)}"))
        startup[name] = timed(executor, warm)
    times: dict[str, list[float]] = {name: [] for name in executors}
    names = list(executors)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            out = folder / f"r{round_}-{names.index(name)}"
            times[name].append(timed(executors[name], grid(out, args.seeds, args.epochs)))
    for executor in executors.values():
        getattr(executor, "close", lambda: None)()
    if not args.no_ray and ray.is_initialized():
        ray.shutdown()

    base = "local, 1 worker"
    print(f"\n| executor | start-up + 1-run grid (s) | grid wall time, median (s) | "
          f"speed-up vs {base} (median of per-round ratios) |")
    print("| --- | ---: | ---: | ---: |")
    for name in executors:
        ratio = statistics.median(b / t for b, t in zip(times[base], times[name]))
        print(f"| {name} | {startup[name]:.1f} | {statistics.median(times[name]):.1f} | "
              f"{ratio:.2f}x |")
    print("\nall rounds (s): " + "; ".join(
        f"{name}: {', '.join(f'{t:.1f}' for t in ts)}" for name, ts in times.items()))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
