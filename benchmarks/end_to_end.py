"""End to end: wall time and peak resident memory of the quick preset and of one full Split
MNIST run per method, each as a user runs it (`compare-baselines` in a fresh process).

Rows:
- ``quick preset``: ``compare-baselines --quick`` (every method, digits, local workers as
  by default: one per core).
- one row per method: the full preset (``--full``: Split MNIST, MLP 2x400, task-incremental)
  reduced to that method, seed 0, task order 01234, no validation grid and the first value
  of its sweep (AlphaMAS: lambda = N), one worker with ``--threads`` torch threads. Each
  method gets its own output folder, so each process also trains the five single-task
  reference models that the reference forgetting needs.

Columns: the process's wall time (interpreter start, imports, data loading, the single-task
references, the run, the report), the run's own wall time and training time from its result
record, and the peak resident set size of the process tree (``os.wait4``'s ``ru_maxrss``:
the largest of the process and its waited-for children, e.g. the worker).

    python benchmarks/end_to_end.py                      # full preset: 5 epochs per task
    python benchmarks/end_to_end.py --epochs 1           # as in results/split_mnist
    python benchmarks/end_to_end.py --methods naive alpha_mas --no-quick
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speed_common import print_table

from alpha_mas_avalanche.cli import preset
from alpha_mas_avalanche.experiment.config import REGISTRY, MethodConfig
from alpha_mas_avalanche.experiment.records import load_records, record_paths


def timed_process(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its wall time (s) and its process tree's peak RSS (MiB)."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a full pipe would block
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n"
                               f"{stderr.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def one_run_config(method: str, epochs: int | None, folder: Path) -> Path:
    """The full preset reduced to one run of ``method``, saved as YAML."""
    config = preset("full")
    sweep = {name: values[:1] for name, values in REGISTRY[method].sweep.items()}
    config.methods = [MethodConfig(method, sweep=sweep)]
    config.seeds = [0]
    config.output_dir = str(folder / method)
    if epochs is not None:
        config.epochs = epochs
    path = folder / f"{method}.yaml"
    config.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per task for the full runs (default: the preset's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per full run")
    parser.add_argument("--no-quick", action="store_true", help="skip the quick preset row")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "alpha_mas_avalanche.cli"]
    epochs = args.epochs if args.epochs is not None else preset("full").epochs
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}; "
          f"full runs: Split MNIST, {epochs} epoch(s) per task, seed 0, "
          f"{args.threads} torch thread(s), 1 worker")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.no_quick:
            seconds, rss = timed_process(cli + ["--quick", "--output", str(folder / "quick")])
            runs = len(record_paths(folder / "quick" / "runs"))
            rows.append([f"quick preset ({runs} runs + single-task refs, digits)",
                         f"{seconds:.1f}", "", "", f"{rss:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
        for method in args.methods:
            config = one_run_config(method, args.epochs, folder)
            seconds, rss = timed_process(cli + ["--config", str(config), "--no-select",
                                                "--workers", "1", "--threads", str(args.threads)])
            record, = load_records(folder / method / "runs", "final__")
            rows.append([f"{REGISTRY[method].label}", f"{seconds:.1f}",
                         f"{record['wall_time_s']:.1f}", f"{record['train_time_s']:.1f}",
                         f"{rss:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print_table(["Run", "Process wall (s)", "Run wall (s)", "Run train (s)", "Peak RSS (MiB)"],
                rows)


if __name__ == "__main__":
    main()
