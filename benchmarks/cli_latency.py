"""CLI latency: wall time of `compare-baselines --help`, `--list-methods` and an argument
error, measured with /usr/bin/time in fresh processes, for this working tree and, side by
side, for an earlier commit (default: the last one before the CLI imported lazily).

Each command runs ``--repeats`` times, the two trees interleaved; the table shows the
median wall time (s), the peak RSS (MiB) and the ratio. The earlier commit's package is
extracted with ``git archive`` into a temporary folder and put first on PYTHONPATH, so both
run in this venv with the same torch/Avalanche/W&B. Nothing is trained.

    python benchmarks/cli_latency.py
    python benchmarks/cli_latency.py --before d69acb5 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"
COMMANDS = {
    "--help": ["--help"],
    "--list-methods": ["--list-methods"],
    "argument error (--threads 0)": ["--quick", "--threads", "0"],
    "argument error (--epochs x)": ["--quick", "--epochs", "x"],
}
LAUNCH = "import sys; from alpha_mas_avalanche.cli import main; sys.argv[0] = 'compare-baselines'; sys.exit(main())"


def timed(args: list[str], pythonpath: str | None) -> tuple[float, float, int]:
    """Wall time (s), peak RSS (MiB) and exit status of one CLI process."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.NamedTemporaryFile("r") as report:
        process = subprocess.run(
            [TIME, "-f", "%e %M", "-o", report.name, sys.executable, "-c", LAUNCH, *args],
            env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        seconds, kib = report.read().split()[-2:]
    return float(seconds), int(kib) / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="d69acb5",
                        help="commit to compare with (default d69acb5: eager imports)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not Path(TIME).is_file():
        raise SystemExit(f"{TIME} not found (apt-get install time)")
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "alpha_mas_avalanche"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        trees = {f"before ({args.before})": old, "now (working tree)": str(REPO)}
        rows = []
        for label, cli_args in COMMANDS.items():
            samples: dict[str, list[tuple[float, float, int]]] = {t: [] for t in trees}
            for _ in range(args.repeats):
                for tree, path in trees.items():
                    samples[tree].append(timed(cli_args, path))
            medians = {t: (statistics.median(s[0] for s in v), max(s[1] for s in v), v[0][2])
                       for t, v in samples.items()}
            rows.append((label, medians))
    names = list(trees)
    print(f"{'command':32} " + " ".join(f"{n:>30}" for n in names) + f" {'ratio':>7}")
    for label, medians in rows:
        cells = [f"{medians[n][0]:6.2f} s {medians[n][1]:6.0f} MiB rc={medians[n][2]}" for n in names]
        ratio = medians[names[0]][0] / max(medians[names[1]][0], 1e-9)
        print(f"{label:32} " + " ".join(f"{c:>30}" for c in cells) + f" {ratio:6.1f}x")
    print(f"(median of {args.repeats} fresh processes each, interleaved; wall time and peak RSS "
          f"from {TIME}; python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
