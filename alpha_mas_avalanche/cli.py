"""``compare-baselines``: AlphaMAS against the baselines, end to end.

Examples::

    compare-baselines --quick                      # offline digits, ~1-2 min on 2 cores
    compare-baselines --full --data-root DATA      # the reference protocol on Split MNIST
    compare-baselines --cifar --data-root DATA     # CIFAR-10 (JPEG q75 copy)
    compare-baselines --config my.yaml --output out/my --wandb offline
    compare-baselines --full --workers 2           # two runs at once on this machine
    compare-baselines --full --executor ray --ray-address auto --cpus-per-run 2

``--help``, ``--list-methods`` and argument errors import neither torch, Avalanche nor W&B
(they answer in well under a second); those are imported when a run starts.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from alpha_mas_avalanche.data.names import (BENCHMARKS, DATA_FREE_BENCHMARKS, LONG_STREAMS, SCENARIOS,
                                            check_scenario)
from alpha_mas_avalanche.experiment.config import WANDB_MODES, ExperimentConfig
from alpha_mas_avalanche.experiment.devices import (
    AMP_MODES,
    check_device,
    check_device_available,
    missing_device_reason,
)
from alpha_mas_avalanche.experiment.methods import REGISTRY, available_methods, check_method_name
from alpha_mas_avalanche.experiment.presets import PRESETS, preset
from alpha_mas_avalanche.validation import check_finite_float, check_non_negative_int, check_positive_int

#: config key -> the flag that overrides it (errors name what the user typed)
FLAGS = {"output_dir": "--output", "wandb": "--wandb", "wandb_project": "--wandb-project",
         "data_root": "--data-root", "device": "--device", "benchmark": "--benchmark",
         "seeds": "--seeds", "epochs": "--epochs", "train_samples_per_task": "--train-samples",
         "scenario": "--scenario", "amp": "--amp", "deterministic": "--deterministic"}
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compare-baselines",
        description=(
            "Compare AlphaMAS, its strength chosen on validation like every baseline's (and "
            "at the write-up's lambda = N, 1.5N, 2N, 3N), with MAS, Avalanche MAS, EWC "
            "(separate/online), SI, LwF, EBLL, IMM, Naive and Joint, reproducibly and "
            "resumably; paired tests over seeds, Holm-adjusted, with TOST at +-1 pp. Writes "
            "one gzip-compressed JSON record per run (runs/), summary.json, CSV files, table.md and figures/ into the output folder "
            "(plus W&B runs if enabled). "
            "Re-running the same command resumes: finished runs are skipped."),
        epilog=(
            "Presets: --quick = scikit-learn digits (offline, no files needed), 2 seeds, 2 epochs, "
            "the quadratic regularisers' strengths chosen on the validation stream from small "
            "grids, AlphaMAS also at lambda = N and 2N, pair (1,2) first and last for MAS and "
            "AlphaMAS, 1 torch thread, written to out/quick_digits/. --full = the reference protocol: Split MNIST, every method, baseline "
            "strengths chosen on the validation stream, 5 seeds, 5 epochs per task, all 5 "
            "placements for MAS and AlphaMAS. --cifar = the same on the CIFAR-10 JPEG q75 copy "
            "(results labelled 'CIFAR-10 (JPEG q75 copy)'). Options given after a preset or "
            "--config override it. Data: <data-root>/mnist/MNIST/raw/*-ubyte, "
            "<data-root>/cifar10/cifar-10-batches-py/, "
            "<data-root>/cifar10/lossy_jpeg_fallback/cifar10_jpeg_q75.npz; nothing is downloaded "
            "unless --download is given."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--quick", action="store_true", help="offline digits preset (~1-2 min on 2 cores)")
    source.add_argument("--full", action="store_true", help="reference protocol on Split MNIST")
    source.add_argument("--cifar", action="store_true", help="reference protocol on CIFAR-10 (JPEG q75 copy)")
    source.add_argument("--preset", choices=list(PRESETS),
                        help="a preset by name; hsu2018 = Hsu et al. 2018's split MNIST protocol "
                             "(32x32, 4 epochs, pairs (0,1)...(8,9); with --scenario domain for "
                             "their incremental-domain column); mas_demo = the MNIST protocol "
                             "of Aljundi et al.'s MAS reference code (MLP 2x256, SGD, task 1 10 "
                             "epochs at lr 0.01, then 20 at lr 0.001); permuted_mnist, "
                             "rotated_mnist (10 tasks) and their _20 variants = long "
                             "domain-incremental streams, 2,000 images per task; "
                             "split_mnist_scaled = --full's protocol, one order, on pairs whose "
                             "inputs are scaled by 1, 0.1, 3, 0.3, 10)")
    source.add_argument("--config", metavar="FILE", help="experiment config (YAML, see docs/harness.md)")
    parser.add_argument("--output", metavar="DIR", help="results folder (default: the preset's or config's)")
    parser.add_argument("--wandb", choices=WANDB_MODES, help="W&B mode (default: the config's, else disabled)")
    parser.add_argument("--wandb-project", metavar="NAME", help="W&B project")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding mnist/ and cifar10/ (default: $ALPHA_MAS_DATA_ROOT, else ./data)")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download MNIST / CIFAR-10 into --data-root first "
                             "if missing (needs internet; off by default)")
    parser.add_argument("--device", metavar="DEV", help="torch device: cpu, cuda (spread over "
                        "the GPUs), cuda:<index> or mps; checked before any run")
    parser.add_argument("--amp", choices=AMP_MODES,
                        help="autocast precision of forward and loss (fp16 with a GradScaler); "
                             "recorded with each run (default: the config's, else off)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="torch's deterministic algorithms (cuDNN/cuBLAS included); "
                             "recorded with each run")
    parser.add_argument("--benchmark", choices=BENCHMARKS, help="override the benchmark")
    parser.add_argument("--scenario", choices=SCENARIOS,
                        help="task (multi-head, default), class (one growing head) or domain "
                             "(one shared 2-output head, label = position within the pair); "
                             "with a preset, its default output folder gets the scenario's name")
    parser.add_argument("--methods", nargs="+", metavar="NAME",
                        help=f"run only these methods (registry: {', '.join(REGISTRY)})")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="S", help="override the seeds")
    parser.add_argument("--epochs", type=int, metavar="E", help="override the epochs per task")
    parser.add_argument("--train-samples", type=int, metavar="N",
                        help="use a seeded random subset of N training samples per task")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="torch CPU threads (default: 1 with --quick, else torch's default); "
                             "small models run fastest on 1 thread")
    parallel = parser.add_argument_group(
        "parallel execution",
        "Runs are independent: by default they run in local worker processes, one per core. "
        "Results come back to this process, which writes them; re-running resumes either way.")
    parallel.add_argument("--executor", choices=("local", "ray"), default="local",
                          help="local worker processes (default) or Ray tasks (needs "
                               "pip install 'alpha-mas-avalanche[ray]')")
    parallel.add_argument("--workers", type=int, metavar="N",
                          help="local: runs at once (default: one per CPU core; 1 = in this "
                               "process); each worker gets CPUs/N torch threads unless --threads")
    parallel.add_argument("--ray-address", metavar="ADDR",
                          help="ray: cluster to join (e.g. auto, ray://head:10001; default: "
                               "$RAY_ADDRESS, else a local Ray instance)")
    parallel.add_argument("--cpus-per-run", type=float, metavar="C",
                          help="ray: CPUs reserved per run (default 1; also its torch threads "
                               "unless --threads)")
    parallel.add_argument("--gpus-per-run", type=float, metavar="G",
                          help="ray: GPUs reserved per run (default 0; fractions share a GPU; "
                               "use with --device cuda)")
    parser.add_argument("--no-select", action="store_true",
                        help="skip validation grids; use registry defaults")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the runs already finished in the output "
                             "folder (a grid still running or stopped) and exit; runs nothing")
    parser.add_argument("--figures", choices=("full", "paper"), default="full",
                        help="full (default): every figure of every row, in figures/; paper: "
                             "also figures/paper/, a few methods at one-column width (3.3 in), "
                             "each in its own colour and marker, no text under 7 pt (with "
                             "--report-only: drawn from the finished runs)")
    parser.add_argument("--save-config", metavar="FILE",
                        help="write the resolved config to FILE and exit (edit it, then --config FILE)")
    parser.add_argument("--list-methods", action="store_true",
                        help="print the method registry with hyperparameter provenance and exit")
    parser.add_argument("--results-index", action="store_true",
                        help="write docs/results.md and results/alpha_map/ from every "
                             "results/<name>/ folder (run in the repository's root) and exit")
    parser.add_argument("--verify-records", metavar="FOLDER",
                        help="re-run --sample random finished runs of a results folder at "
                             "today's code and report whether they reproduce bit for bit, or "
                             "which fields moved and by how much; writes FOLDER/verification.json")
    parser.add_argument("--sample", type=int, metavar="K",
                        help="how many runs --verify-records re-runs (default 3)")
    return parser


def _check_long_stream_scenario(args: argparse.Namespace) -> None:
    """A long stream (permuted/rotated MNIST) is domain-incremental: a preset or benchmark
    of one with another scenario is refused here, before the presets build their plugins."""
    long_stream = args.benchmark if args.benchmark in LONG_STREAMS else \
        args.preset if not args.config and args.preset in LONG_STREAMS else None
    if long_stream is None or (args.scenario is None and (args.config or args.preset in LONG_STREAMS)):
        return  # a long-stream preset's own 'domain', or the config's (checked as it loads)
    check_scenario(long_stream, args.scenario or "task", param="--scenario")


def check_arguments(args: argparse.Namespace) -> None:
    """Errors naming the flag, before any config is built or anything heavy imported."""
    if not (args.config or args.quick or args.full or args.cifar or args.preset
            or args.list_methods or args.results_index or args.verify_records):
        raise ValueError("choose a preset (--quick, --full, --cifar, --preset NAME) or --config FILE")
    if args.sample is not None:
        if not args.verify_records:
            raise ValueError("--sample: only with --verify-records FOLDER")
        check_positive_int("--sample", args.sample)
    if args.verify_records and not (Path(args.verify_records) / "config.yaml").is_file():
        raise ValueError(f"--verify-records {args.verify_records}: expected a results folder "
                         "holding config.yaml")
    for flag, value in (("--threads", args.threads), ("--workers", args.workers),
                        ("--epochs", args.epochs), ("--train-samples", args.train_samples)):
        if value is not None:
            check_positive_int(flag, value)
    _check_long_stream_scenario(args)
    if args.seeds is not None:
        for seed in args.seeds:
            check_non_negative_int("--seeds", seed)
        if len(set(args.seeds)) != len(args.seeds):
            raise ValueError(f"--seeds: expected distinct seeds, got {args.seeds}")
    if args.cpus_per_run is not None:
        check_finite_float("--cpus-per-run", args.cpus_per_run, positive=True)
    if args.gpus_per_run is not None:
        check_finite_float("--gpus-per-run", args.gpus_per_run, non_negative=True)
    for name in args.methods or ():
        check_method_name("--methods", name)
    for flag, value in (("--output", args.output), ("--data-root", args.data_root),
                        ("--device", args.device), ("--wandb-project", args.wandb_project)):
        if value is not None and not value.strip():
            raise ValueError(f"{flag}: expected a non-empty value, got {value!r}")
    if args.executor == "local":
        given = [f for f, v in (("--ray-address", args.ray_address), ("--cpus-per-run", args.cpus_per_run),
                                ("--gpus-per-run", args.gpus_per_run)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --executor ray")
    elif args.workers is not None:
        raise ValueError("--workers: only with --executor local (Ray places runs by "
                         "--cpus-per-run / --gpus-per-run)")


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The preset or ``--config`` file with the flags applied (a config file's own errors
    name the file; an override's error names its flag)."""
    if args.config:
        try:
            config = ExperimentConfig.load(args.config)
        except OSError as err:
            raise ValueError(f"--config {args.config}: {err.strerror or err}") from err
        except (ValueError, yaml.YAMLError) as err:
            raise ValueError(f"--config {args.config}: {err}") from err
    else:
        name = args.preset or ("full" if args.full else "cifar" if args.cifar else "quick")
        config = preset(name, args.scenario or "task")
    data = config.to_dict()
    overrides = {"output_dir": args.output, "wandb": args.wandb, "wandb_project": args.wandb_project,
                 "data_root": args.data_root, "device": args.device, "benchmark": args.benchmark,
                 "seeds": args.seeds, "epochs": args.epochs,
                 "train_samples_per_task": args.train_samples, "scenario": args.scenario,
                 "amp": args.amp, "deterministic": args.deterministic}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    data.update(overrides)
    if args.benchmark and not args.config:
        data["model"] = None
        if args.benchmark != config.benchmark and LONG_STREAMS.keys() & {args.benchmark, config.benchmark}:
            # a preset's task orders belong to its own benchmark: another length runs in its own order
            data["task_orders"] = None
            for method in data["methods"]:
                method["task_orders"] = None
    if args.methods:
        data["methods"] = [m for m in data["methods"] if m["name"] in args.methods]
        known = {m["name"] for m in data["methods"]}
        data["methods"] += [{"name": n} for n in args.methods if n not in known]
    if args.no_select:
        for method in data["methods"]:
            method["select"], method["refine"] = {}, False
    try:
        return ExperimentConfig.from_dict(data)
    except ValueError as err:
        key = str(err).split(":", 1)[0]
        if key in overrides:
            raise ValueError(f"{FLAGS[key]}{str(err)[len(key):]}") from err
        raise


def _verify(args: argparse.Namespace) -> int:
    """``--verify-records``: re-run the sample, print one line per run, write the result."""
    from alpha_mas_avalanche.experiment.store import write_json_atomic
    from alpha_mas_avalanche.experiment.verify import report_lines, verify_records

    folder = Path(args.verify_records)
    results = verify_records(folder, args.sample or 3, data_root=args.data_root,
                             threads=args.threads or 1)
    for line in report_lines(results):
        print(line)
    write_json_atomic(folder / "verification.json", results)
    print(f"{sum(r['reproduced'] for r in results)} of {len(results)} reproduced bit for bit; "
          f"written: {folder / 'verification.json'}")
    return 0 if all(r["reproduced"] for r in results) else 1


def available_devices() -> list[str]:
    """The ``--device`` values this machine can run: ``cpu``, ``mps`` where torch sees it,
    ``cuda`` and ``cuda:<index>`` per GPU (imports torch, nothing else)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return (["cpu"] + (["mps"] if torch.backends.mps.is_available() else [])
            + (["cuda"] if gpus else []) + [f"cuda:{i}" for i in range(gpus)])


def check_device_flag(value: str) -> None:
    """``--device``: the form without torch, then whether this machine has it: without torch
    where it plainly cannot (no GPU driver), else with torch alone (before a preset builds its
    plugins and imports Avalanche)."""
    check_device(FLAGS["device"], value)
    reason = missing_device_reason(value)  # without torch where the answer is plain
    if reason is not None:
        raise ValueError(f"{FLAGS['device']}: {value!r}, but {reason}; accepted on this "
                         "machine: cpu")
    try:
        check_device_available(FLAGS["device"], value)
    except ValueError as err:
        raise ValueError(f"{err}; accepted on this machine: {', '.join(available_devices())}") from err


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_arguments(args)
        if args.device is not None and not (args.report_only or args.save_config or args.list_methods
                                            or args.results_index):
            check_device_flag(args.device)  # a run on this machine: refused before any import
    except ValueError as err:
        print(f"compare-baselines: error: {err}", file=sys.stderr)
        return 2
    if args.results_index:
        from alpha_mas_avalanche.experiment.results_index import write_results_index

        print(f"written: {write_results_index()}")
        return 0
    if args.verify_records:
        return _verify(args)
    if args.list_methods:
        for name, entry in REGISTRY.items():
            status = "" if name in available_methods() else " [not installed]"
            print(f"{name}{status}: {entry.label}; defaults {entry.defaults}; "
                  f"validation grid {entry.select or '-'}; sweep {entry.sweep or '-'}\n"
                  f"    {entry.provenance}")
        return 0
    try:
        config = resolve_config(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"compare-baselines: error: {err}", file=sys.stderr)
        return 2
    if args.data_root is not None and config.benchmark in DATA_FREE_BENCHMARKS:
        print(f"compare-baselines: warning: --data-root {args.data_root} is not read: "
              f"{config.benchmark} ships with scikit-learn", file=sys.stderr)
    if args.save_config:
        config.save(args.save_config)
        print(f"config written to {args.save_config}")
        return 0
    threads = args.threads if args.threads is not None else (1 if args.quick or args.preset == "quick" else None)
    try:
        if not args.report_only and args.device is None:  # a config's device must exist here too
            check_device_available("device", config.device)
        executor = make_executor(args, config, threads)
    except (ValueError, TypeError, ImportError) as err:
        print(f"compare-baselines: error: {err}", file=sys.stderr)
        return 2
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from alpha_mas_avalanche.data import DatasetNotFoundError
    from alpha_mas_avalanche.experiment.grid import report_finished, run_experiment

    if args.report_only:
        try:
            summary = report_finished(config)
        except ValueError as err:
            print(f"compare-baselines: error: {err}", file=sys.stderr)
            return 2
        print((Path(config.output_dir) / "table.md").read_text())
        print(f"report on {summary['n_runs']} finished run(s) in {config.output_dir}")
        write_paper_figures(args, config)
        return 0

    try:
        if args.download:
            from alpha_mas_avalanche.data import download

            download(config.benchmark, config.data_root)
        if args.executor == "local":  # the data is on this machine: check it before any worker starts
            check_data(config)
        # SIGTERM (kill, a cluster's pre-emption) stops the grid as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            summary = run_experiment(config, executor=executor)
        finally:
            signal.signal(signal.SIGTERM, previous)
    except DatasetNotFoundError as err:
        print(f"compare-baselines: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        command = shlex.join(["compare-baselines", *(sys.argv[1:] if argv is None else argv)])
        print(f"\ncompare-baselines: interrupted; every finished run is kept in "
              f"{config.output_dir}. Resume with the same command:\n  {command}", file=sys.stderr)
        return 130
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    table = Path(config.output_dir) / "table.md"
    if table.is_file():
        print(table.read_text())
    print(f"results in {config.output_dir}: {summary['counts']}")
    write_paper_figures(args, config)
    failed = Path(config.output_dir) / "failed"
    if summary["config_errors"]:
        print(f"compare-baselines: {len(summary['config_errors'])} run(s) cannot be built from the "
              f"config (a bad hyperparameter; errors in {failed}): fix the config, then re-run. "
              "They were not retried.", file=sys.stderr)
    transient = [r for r in summary["failed_runs"] if r not in summary["config_errors"]]
    if transient:
        print(f"compare-baselines: {len(transient)} run(s) failed twice; their errors are in "
              f"{failed}. Re-run the same command to retry them (finished runs are kept).",
              file=sys.stderr)
    return 1 if summary["failed_runs"] else 0


def write_paper_figures(args: argparse.Namespace, config: ExperimentConfig) -> None:
    """With ``--figures paper``: the paper set into figures/paper/, from the report just written."""
    if args.figures == "paper":
        from alpha_mas_avalanche.experiment.paper_figures import write_paper_set

        written = write_paper_set(Path(config.output_dir))
        print(f"{len(written) // 2} paper figure(s) in {Path(config.output_dir) / 'figures' / 'paper'}")


def check_data(config: ExperimentConfig) -> None:
    """Raise DatasetNotFoundError (naming the files) if the benchmark's data is missing."""
    from alpha_mas_avalanche import data

    checks = {"split_mnist": data.check_mnist, "split_mnist_hsu2018": data.check_mnist,
              "split_mnist_scaled": data.check_mnist,
              **{name: data.check_mnist for name in LONG_STREAMS},
              "split_cifar10": data.check_cifar10,
              "split_cifar10_jpeg": data.check_cifar10_jpeg}
    if config.benchmark in checks:
        checks[config.benchmark](config.data_root)


def make_executor(args: argparse.Namespace, config: ExperimentConfig, threads: int | None):
    """The executor the parallel-execution options ask for (checked before anything runs)."""
    gpus = 0.0 if args.gpus_per_run is None else args.gpus_per_run
    if args.executor == "ray" and gpus > 0 and not config.device.startswith("cuda"):
        raise ValueError(f"--gpus-per-run {gpus:g} reserves GPUs but the device is "
                         f"{config.device!r}; add --device cuda")
    if args.executor == "ray" and gpus == 0 and config.device.startswith("cuda"):
        raise ValueError("--device cuda with --executor ray needs --gpus-per-run > 0 "
                         "(Ray hides the GPUs from tasks that reserve none)")
    from alpha_mas_avalanche.experiment import executors

    if args.executor == "local":
        if args.workers == 1:
            return executors.sequential_executor
        return executors.LocalProcessExecutor(args.workers, threads, device=config.device)
    return executors.RayExecutor(args.ray_address, 1.0 if args.cpus_per_run is None else args.cpus_per_run,
                                 gpus, threads=threads)


if __name__ == "__main__":
    sys.exit(main())
