"""Run an :class:`ExperimentConfig`: a grid of independent runs, resumable, reproducible.

The grid is expanded into :class:`RunSpec` s (method, hyperparameters, seed, task order).
:func:`execute_run` turns one spec into a JSON-ready dict and has no side effects (no
files, no W&B), so any executor can ship it to another process or machine. The driver
(:func:`run_experiment`) writes each finished run atomically to its own file, skips
finished runs when the grid runs again, logs W&B runs and writes the report.

Phases: (1) validation-grid runs (``eval_stream="valid"``) for methods with a ``select``
grid, together with the single-task reference runs (one per seed and pair, cached in
``single_task/``); the best grid value is kept; (2) the final runs on the test stream.
Executors (:mod:`~alpha_mas_avalanche.experiment.executors`) run each phase's specs in this
process, in local worker processes or on Ray; a failed run is retried once, then recorded
in ``failed/`` and re-run by the next invocation.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin

from alpha_mas_avalanche.data import N_TASKS, make_benchmark
from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.methods import build_method, method_label
from alpha_mas_avalanche.models import count_parameters, make_model

RESULT_FORMAT = 1
#: Config keys that may change between a run and its resumption.
RESUMABLE_KEYS = ("output_dir", "wandb", "wandb_project", "data_root", "device", "name")
EXP_ACC = re.compile(r"^Top1_Acc_Exp/eval_phase/(\w+?)_stream/Task(\d+)/Exp(\d+)$")


@dataclass
class RunSpec:
    """One independent run. Picklable; :attr:`run_id` names its result file."""

    benchmark: str
    scenario: str
    model: str
    epochs: int
    lr: float
    optimizer: str
    batch_size: int
    eval_batch_size: int
    validation_size: float
    train_samples_per_task: int | None
    eval_samples_per_task: int | None
    data_root: str | None
    device: str
    seed: int
    task_order: list[int]
    method: str = "naive"
    params: dict[str, Any] = field(default_factory=dict)
    eval_stream: str = "test"
    phase: str = "final"  # "select" | "final" | "single_task"
    pair: int | None = None  # single_task: the pair trained alone
    show_progress: bool = False

    @property
    def run_id(self) -> str:
        order = "".join(map(str, self.task_order))
        if self.phase == "single_task":
            return f"single__{self.benchmark}__{self.scenario}__pair{self.pair}__seed{self.seed}__{self.eval_stream}__{self.settings_key()}"
        params = "_".join(f"{k}={_slug(v)}" for k, v in sorted(self.params.items())) or "default"
        return f"{self.phase}__{self.method}__{params}__seed{self.seed}__order{order}"

    def settings_key(self) -> str:
        """Short hash of the training settings shared by the whole grid."""
        import hashlib

        keys = ("model", "epochs", "lr", "optimizer", "batch_size", "validation_size",
                "train_samples_per_task", "eval_samples_per_task")
        text = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def _slug(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


# ----------------------------------------------------------------------- grid
def _base_spec(config: ExperimentConfig, seed: int, order: list[int], **more: Any) -> RunSpec:
    return RunSpec(
        benchmark=config.benchmark, scenario=config.scenario, model=config.model,
        epochs=config.epochs, lr=config.lr, optimizer=config.optimizer,
        batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
        validation_size=config.validation_size,
        train_samples_per_task=config.train_samples_per_task,
        eval_samples_per_task=config.eval_samples_per_task,
        data_root=config.data_root, device=config.device, seed=seed, task_order=list(order),
        **more,
    )


def _combos(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def selection_specs(config: ExperimentConfig) -> list[RunSpec]:
    """Validation-grid runs: each ``select`` combination x selection seed, first task order."""
    seeds = config.selection_seeds or config.seeds[:1]
    specs = []
    for method in config.methods:
        if not method.select:
            continue
        order = (method.task_orders or config.task_orders)[0]
        first_sweep = {k: v[0] for k, v in method.sweep.items()}
        for combo in _combos(method.select):
            for seed in seeds:
                specs.append(_base_spec(
                    config, seed, order, method=method.name,
                    params={**method.params, **first_sweep, **combo},
                    eval_stream="valid", phase="select",
                ))
    return specs


def choose_hyperparameters(config: ExperimentConfig, records: dict[str, dict]) -> dict[str, dict]:
    """Per selected method: the grid value with the best mean final validation accuracy
    (methods with a missing validation run are left out: nothing is chosen on part of a grid)."""
    by_method: dict[str, dict[str, list[float]]] = {}
    specs = selection_specs(config)
    incomplete = {spec.method for spec in specs if spec.run_id not in records}
    for spec in specs:
        if spec.method in incomplete:
            continue
        record = records[spec.run_id]
        method = next(m for m in config.methods if m.name == spec.method)
        combo = {k: spec.params[k] for k in method.select}
        key = json.dumps(combo, sort_keys=True)
        by_method.setdefault(spec.method, {}).setdefault(key, []).append(record["final_avg_acc"])
    chosen = {}
    for name, scores in by_method.items():
        means = {key: float(np.mean(v)) for key, v in scores.items()}
        best = max(means, key=lambda key: (means[key], key))
        chosen[name] = {"chosen": json.loads(best), "valid_acc": {k: means[k] for k in means}}
    return chosen


def final_specs(config: ExperimentConfig, chosen: dict[str, dict] | None = None) -> list[RunSpec]:
    """Test-stream runs: method x sweep value x seed x task order (selected values merged)."""
    chosen = chosen or {}
    specs = []
    for method in config.methods:
        selected = chosen.get(method.name, {}).get("chosen", {})
        for combo in _combos(method.sweep) if method.sweep else [{}]:
            for order in method.task_orders or config.task_orders:
                for seed in config.seeds:
                    specs.append(_base_spec(
                        config, seed, order, method=method.name,
                        params={**method.params, **selected, **combo},
                    ))
    # the main task order first, seed-major: an interrupted grid leaves the main comparison
    # finished over whole seeds before the order-sensitivity runs
    main_order = list(config.task_orders[0])
    specs.sort(key=lambda spec: (spec.task_order != main_order, config.seeds.index(spec.seed)))
    return specs


def single_task_specs(config: ExperimentConfig) -> list[RunSpec]:
    """The reference forgetting's single-task models: one per (seed, pair)."""
    return [
        _base_spec(config, seed, list(range(N_TASKS)), phase="single_task", pair=pair)
        for seed in config.seeds for pair in range(N_TASKS)
    ]


# ------------------------------------------------------------------ one run
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (Avalanche's RNGManager); data order follows."""
    from avalanche.training.determinism.rng_manager import RNGManager

    RNGManager.set_random_seeds(seed)


def experience_seed(seed: int, experience: int) -> int:
    """Seed reset before training experience ``experience`` (data order, dropout)."""
    return (seed * 1_000_003 + experience + 1) % 2**32


@functools.lru_cache(maxsize=16)
def _cached_benchmark(benchmark: str, scenario: str, data_root: str | None, seed: int,
                      order: tuple[int, ...], validation_size: float,
                      train_samples: int | None, eval_samples: int | None):
    return make_benchmark(
        benchmark, scenario=scenario, data_root=data_root, seed=seed, task_order=order,
        validation_size=validation_size, train_samples_per_task=train_samples,
        eval_samples_per_task=eval_samples,
    )


def _benchmark_for(spec: RunSpec):
    return _cached_benchmark(spec.benchmark, spec.scenario, spec.data_root, spec.seed,
                             tuple(spec.task_order), spec.validation_size,
                             spec.train_samples_per_task, spec.eval_samples_per_task)


def _training_parts(spec: RunSpec, bm, plugins: list, progress_total: int):
    from avalanche.evaluation.metrics import (
        accuracy_metrics,
        bwt_metrics,
        forgetting_metrics,
        loss_metrics,
    )
    from avalanche.training.plugins import EvaluationPlugin

    seed_everything(spec.seed)
    input_shape = tuple(bm.train_stream[0].dataset[0][0].shape)
    model = make_model(spec.model, input_shape=input_shape, scenario=spec.scenario)
    if spec.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9)
    evaluator = EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[],
    )
    recorder = TrainingRecorder(plugins, progress_total if spec.show_progress else 0,
                                spec.run_id)
    return model, optimizer, evaluator, recorder


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Train and evaluate one run; return its record (JSON-ready, finite numbers only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        warnings.filterwarnings("ignore", message="stream generator")
        started = time.perf_counter()
        record = _single_task(spec) if spec.phase == "single_task" else _sequence(spec)
    record.update(
        run_id=spec.run_id, spec=asdict(spec), format=RESULT_FORMAT,
        wall_time_s=time.perf_counter() - started,
    )
    return sanitize(record)


def _strategy(kind: str, model, optimizer, spec: RunSpec, plugins: list, evaluator):
    from avalanche.training import JointTraining, Naive

    cls = JointTraining if kind == "joint" else Naive
    return cls(
        model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=spec.batch_size, train_epochs=spec.epochs,
        eval_mb_size=spec.eval_batch_size, device=spec.device, plugins=plugins,
        evaluator=evaluator, eval_every=-1,
    )


def _sequence(spec: RunSpec) -> dict[str, Any]:
    bm = _benchmark_for(spec)
    kind, plugins = build_method(spec.method, spec.params, N_TASKS)
    eval_stream = bm.valid_stream if spec.eval_stream == "valid" else bm.test_stream
    n_exps = len(bm.train_stream)
    model, optimizer, evaluator, recorder = _training_parts(
        spec, bm, plugins, spec.epochs * (1 if kind == "joint" else n_exps))
    strategy = _strategy(kind, model, optimizer, spec, plugins + [recorder], evaluator)
    train_time = 0.0
    rows: list[dict[int, float]] = []
    try:
        if kind == "joint":
            start = time.perf_counter()
            strategy.train(bm.train_stream, num_workers=0)
            train_time += time.perf_counter() - start
            strategy.eval(eval_stream, num_workers=0)
            rows.append(_exp_accuracies(evaluator.get_last_metrics()))
        else:
            for i, experience in enumerate(bm.train_stream):
                # same minibatch order for every method, whatever RNG its plugin draws
                seed_everything(experience_seed(spec.seed, i))
                start = time.perf_counter()
                strategy.train(experience, num_workers=0)
                train_time += time.perf_counter() - start
                strategy.eval(eval_stream[: i + 1], num_workers=0)
                rows.append(_exp_accuracies(evaluator.get_last_metrics()))
    finally:
        recorder.close()
    last = evaluator.get_last_metrics()
    final_row = rows[-1]
    final_acc = [final_row[j] for j in range(n_exps)]
    stream = "valid" if spec.eval_stream == "valid" else "test"
    return {
        "method": spec.method,
        "label": method_label(spec.method, spec.params),
        "params": spec.params,
        "seed": spec.seed,
        "task_order": spec.task_order,
        "benchmark_name": bm.display_name,
        "task_classes": [list(c) for c in bm.task_classes],
        "eval_stream": spec.eval_stream,
        "n_parameters": count_parameters(model),
        # acc_matrix[i][j]: accuracy on the j-th task (position) after training task i
        "acc_matrix": [[row.get(j) for j in range(n_exps)] for row in rows],
        "final_acc": final_acc,
        "final_acc_by_pair": {str(p): a for p, a in zip(spec.task_order, final_acc)},
        "final_avg_acc": float(np.mean(final_acc)),
        "avalanche_forgetting": _metric(last, f"StreamForgetting/eval_phase/{stream}_stream"),
        "avalanche_bwt": _metric(last, f"StreamBWT/eval_phase/{stream}_stream"),
        "avalanche_forgetting_by_exp": _per_exp(last, "ExperienceForgetting", stream, n_exps),
        "epochs": _epoch_curve(evaluator.get_all_metrics(), spec.epochs),
        "penalty_per_epoch": recorder.penalty_per_epoch,
        "alphas_per_experience": recorder.alphas,
        "importance_totals_per_experience": recorder.totals,
        "train_time_s": train_time,
    }


def _single_task(spec: RunSpec) -> dict[str, Any]:
    bm = _benchmark_for(spec)
    eval_stream = bm.valid_stream if spec.eval_stream == "valid" else bm.test_stream
    model, optimizer, evaluator, recorder = _training_parts(spec, bm, [], spec.epochs)
    strategy = _strategy("naive", model, optimizer, spec, [recorder], evaluator)
    try:
        strategy.train(bm.train_stream[spec.pair], num_workers=0)
        strategy.eval(eval_stream[spec.pair: spec.pair + 1], num_workers=0)
    finally:
        recorder.close()
    accuracies = _exp_accuracies(evaluator.get_last_metrics())
    return {"pair": spec.pair, "seed": spec.seed, "acc": accuracies[spec.pair],
            "task_classes": list(bm.task_classes[spec.pair])}


def _exp_accuracies(metrics: dict[str, Any]) -> dict[int, float]:
    out = {}
    for name, value in metrics.items():
        match = EXP_ACC.match(name)
        if match:
            out[int(match.group(3))] = float(value)
    return out


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None else float(value)


def _per_exp(metrics: dict[str, Any], prefix: str, stream: str, n_exps: int) -> list[float | None]:
    out: list[float | None] = [None] * n_exps
    pattern = re.compile(rf"^{prefix}/eval_phase/{stream}_stream/Task\d+/Exp(\d+)$")
    for name, value in metrics.items():
        match = pattern.match(name)
        if match:
            out[int(match.group(1))] = float(value)
    return out


def _epoch_curve(all_metrics: dict[str, tuple[list, list]], epochs: int) -> list[dict[str, Any]]:
    """Training accuracy and loss per epoch, over the whole sequence, in order."""
    points: dict[str, list[tuple[int, float]]] = {"acc": [], "loss": []}
    for name, (xs, ys) in all_metrics.items():
        if name.startswith("Top1_Acc_Epoch/train_phase/"):
            points["acc"] += list(zip(xs, ys))
        elif name.startswith("Loss_Epoch/train_phase/"):
            points["loss"] += list(zip(xs, ys))
    acc = sorted(points["acc"])
    loss = dict(sorted(points["loss"]))
    return [
        {"epoch": k, "experience": k // epochs, "train_acc": float(y), "train_loss": loss.get(x)}
        for k, (x, y) in enumerate(acc)
    ]


class TrainingRecorder(SupervisedPlugin):
    """Avalanche plugin: mean penalty per epoch, alphas after each experience, tqdm over epochs."""

    def __init__(self, plugins: list, progress_total: int = 0, name: str = "") -> None:
        super().__init__()
        self.sources = [p for p in plugins if hasattr(p, "last_penalty")]
        self.penalty_per_epoch: list[float] = []
        self.alphas: list[list[float]] = []
        self.totals: list[list[float]] = []
        self._sum, self._count = 0.0, 0
        self._bar = None
        if progress_total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=progress_total, desc=f"epochs {name}"[:60], leave=False,
                             position=1, unit="epoch")

    def after_training_iteration(self, strategy, **kwargs) -> None:
        if self.sources:
            self._sum += sum(float(p.last_penalty) for p in self.sources)
            self._count += 1

    def after_training_epoch(self, strategy, **kwargs) -> None:
        if self.sources:
            self.penalty_per_epoch.append(self._sum / max(self._count, 1))
            self._sum, self._count = 0.0, 0
        if self._bar is not None:
            self._bar.update(1)

    def after_training_exp(self, strategy, **kwargs) -> None:
        for plugin in self.sources:
            if hasattr(plugin, "alphas"):
                self.alphas.append([float(a) for a in plugin.alphas])
            if hasattr(plugin, "importance_totals"):
                self.totals.append([float(t) for t in plugin.importance_totals])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -------------------------------------------------------------------- files
def sanitize(value: Any) -> Any:
    """Recursively: non-finite floats -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, torch.Tensor):
        return sanitize(value.tolist())
    return value


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(sanitize(data), handle, indent=1, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_directory(path.parent)  # the rename itself survives a machine crash
    _remove_stale_temporaries(path)


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory descriptors
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``path``'s temporary files left by writers that were killed (dead pids)."""
    import glob

    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2: -len(".tmp")]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} (results hold finite numbers or null)")


def read_record(path: Path) -> dict | None:
    """A finished run's record, or None if absent or unusable (then the run is repeated).

    A file that is not a complete record of this run (half-written or corrupt by a
    machine crash, empty, NaN/Infinity, another run's or another format's record) gives
    one warning naming it and what is wrong; it is overwritten when the run finishes."""
    if not path.is_file():
        return None
    problem = None
    try:
        record = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, OSError) as err:  # JSONDecodeError is a ValueError
        problem = f"unreadable ({type(err).__name__}: {err}; half-written or corrupt)"
    else:
        if not isinstance(record, dict):
            problem = f"not a run record (a JSON {type(record).__name__})"
        elif record.get("run_id") != path.stem:
            problem = f"holds the result of run {record.get('run_id')!r}, not of this run"
        elif record.get("format") != RESULT_FORMAT:
            problem = (f"has result format {record.get('format')!r}, this version writes "
                       f"{RESULT_FORMAT}")
    if problem is not None:
        warnings.warn(f"result file {path}: {problem}; the run will be repeated and the "
                      "file replaced", stacklevel=2)
        return None
    return record


def spec_path(output_dir: Path, spec: RunSpec) -> Path:
    folder = "single_task" if spec.phase == "single_task" else "runs"
    return output_dir / folder / f"{spec.run_id}.json"


def environment_info() -> dict[str, Any]:
    """Package versions, Python, platform and the project's git commit."""
    from importlib import metadata

    versions = {}
    for package in ("alpha-mas-avalanche", "avalanche-lib", "torch", "torchvision", "numpy",
                    "scipy", "pandas", "matplotlib", "scikit-learn", "wandb", "pyyaml", "tqdm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    repo = Path(__file__).resolve().parents[2]
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "packages": versions, "python": sys.version, "platform": platform.platform(),
        "git_commit": commit, "git_dirty": dirty, "torch_threads": torch.get_num_threads(),
        "command": sys.argv,
    }


# ------------------------------------------------------------------- driver
@dataclass
class RunFailure:
    """A run that raised (``error``: one line, ``traceback``) or whose worker was lost."""

    error: str
    traceback: str = ""
    worker_lost: bool = False


#: ``executor(specs)`` yields ``(spec, record or RunFailure)`` as runs end, in any order
#: (see :mod:`alpha_mas_avalanche.experiment.executors`).
Executor = Callable[[list[RunSpec]], Iterable[tuple[RunSpec, "dict | RunFailure"]]]
#: Attempts per run and grid invocation: a failed run is retried once.
MAX_ATTEMPTS = 2


def sequential_executor(specs: list[RunSpec]) -> Iterator[tuple[RunSpec, dict | RunFailure]]:
    """Run specs one after the other in this process; a run that raises is a RunFailure
    (a missing dataset stops the grid instead)."""
    import traceback

    from alpha_mas_avalanche.data import DatasetNotFoundError

    for spec in specs:
        spec.show_progress = True
        try:
            record = execute_run(spec)
        except DatasetNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - recorded; the grid goes on
            yield spec, RunFailure(f"{type(err).__name__}: {err}", traceback.format_exc())
            continue
        yield spec, record


def _check_resumable(output_dir: Path, config: ExperimentConfig) -> None:
    path = output_dir / "config.yaml"
    if not path.is_file():
        return
    previous = ExperimentConfig.load(path).to_dict()
    current = config.to_dict()
    changed = sorted(k for k in current if k not in RESUMABLE_KEYS and previous.get(k) != current[k])
    if changed:
        raise ValueError(
            f"output_dir {output_dir} holds results of a different experiment (changed: "
            f"{changed}); use another --output folder, or the same config to resume"
        )


def failure_path(output_dir: Path, spec: RunSpec) -> Path:
    """Where a failed run's error is recorded (not a result: the next invocation re-runs it)."""
    return output_dir / "failed" / f"{spec.run_id}.json"


class GridProgress:
    """One tqdm bar over a grid: finished runs, with ``running`` and ``failed`` beside it."""

    def __init__(self, total: int, desc: str = "runs") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="run", position=0, dynamic_ncols=True)
        self.failed = 0

    def skip(self, count: int) -> None:
        """``count`` runs were finished before (not counted in the rate)."""
        self.bar.initial += count
        self.bar.n += count
        self.bar.refresh()

    def show(self, running: int | None, finished: int = 0) -> None:
        self.bar.set_postfix_str(
            (f"running={running}, " if running is not None else "") + f"failed={self.failed}",
            refresh=not finished)
        if finished:
            self.bar.update(finished)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_phase(specs: list[RunSpec], output_dir: Path, executor: Executor | None = None,
              on_result: Callable[[RunSpec, dict], None] | None = None,
              desc: str = "runs", progress: GridProgress | None = None) -> dict[str, dict]:
    """Execute the specs without a result file; return the finished specs' records by run_id.

    The driver writes each record as it comes back (workers need no shared filesystem).
    A failed run (exception, lost worker) is written to ``failed/<run_id>.json`` and
    retried once; if it fails again it is left out of the returned records, the others go
    on, and the next invocation retries it. A success removes its failure file.
    """
    executor = executor or sequential_executor
    records: dict[str, dict] = {}
    pending = []
    for spec in specs:
        record = read_record(spec_path(output_dir, spec))
        if record is None:
            pending.append(spec)
        else:
            records[spec.run_id] = record
    own_progress = progress is None
    if own_progress:
        if not pending:
            return records
        progress = GridProgress(len(specs), desc)
    progress.skip(len(specs) - len(pending))

    def running() -> int | None:
        return 1 if executor is sequential_executor else getattr(executor, "running", None)

    attempts: dict[str, int] = {}
    queue = pending
    try:
        while queue:
            retry = []
            outcomes = iter(executor(queue))
            try:
                for spec, result in outcomes:
                    if isinstance(result, RunFailure):
                        attempts[spec.run_id] = attempts.get(spec.run_id, 0) + 1
                        _record_failure(output_dir, spec, result, attempts[spec.run_id])
                        if attempts[spec.run_id] < MAX_ATTEMPTS:
                            retry.append(spec)
                            progress.write(f"run {spec.run_id} failed ({result.error}); "
                                           "it will be retried once")
                        else:
                            progress.failed += 1
                            progress.write(
                                f"run {spec.run_id} failed again ({result.error}); recorded in "
                                f"{failure_path(output_dir, spec)}; the grid goes on")
                        progress.show(running())
                        continue
                    write_json_atomic(spec_path(output_dir, spec), result)
                    failure_path(output_dir, spec).unlink(missing_ok=True)
                    records[spec.run_id] = result
                    if on_result is not None:
                        on_result(spec, result)
                    progress.show(running(), finished=1)
            finally:
                close = getattr(outcomes, "close", None)
                if close is not None:  # stops the executor's runs in flight on errors/Ctrl-C
                    close()
            queue = retry
    finally:
        if own_progress:
            progress.close()
    return records


def _record_failure(output_dir: Path, spec: RunSpec, failure: RunFailure, attempt: int) -> None:
    write_json_atomic(failure_path(output_dir, spec), {
        "run_id": spec.run_id, "failed": True, "error": failure.error,
        "traceback": failure.traceback, "worker_lost": failure.worker_lost,
        "attempts": attempt, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "spec": asdict(spec), "format": RESULT_FORMAT,
    })


def run_experiment(config: ExperimentConfig, *, executor: Executor | None = None,
                   report: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole grid; write runs, selection, report; return the summary."""
    from alpha_mas_avalanche.experiment import report as reporting
    from alpha_mas_avalanche.experiment.wandb_logging import WandbSession

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(output_dir, config)
    config.save(output_dir / "config.yaml")
    write_json_atomic(output_dir / "environment.json", environment_info())

    wandb = WandbSession(config)
    select, singles = selection_specs(config), single_task_specs(config)
    progress = GridProgress(len(select) + len(singles) + len(final_specs(config)), config.name)
    try:
        # validation-grid and single-task reference runs are independent: one phase, so
        # parallel workers stay busy; single-task models are computed once per (seed, pair)
        first = run_phase(select + singles, output_dir, executor, progress=progress)
        chosen = choose_hyperparameters(config, first)
        write_json_atomic(output_dir / "selection.json", chosen)
        # a method whose validation grid is incomplete has no choice yet: its final runs wait
        waiting = sorted({s.method for s in select if s.run_id not in first})
        final = [s for s in final_specs(config, chosen) if s.method not in waiting]
        run_records = run_phase(final, output_dir, executor, on_result=wandb.log_run,
                                progress=progress)
    finally:
        progress.close()
    failed = [s.run_id for s in select + singles + final
              if s.run_id not in first and s.run_id not in run_records]
    finished = [run_records[s.run_id] for s in final if s.run_id in run_records]
    summary: dict[str, Any] = {"selection": chosen}
    if report and finished:
        summary = reporting.write_report(
            output_dir, finished, [first[s.run_id] for s in singles if s.run_id in first],
            config=config, selection=chosen,
        )
        wandb.log_summary(summary, output_dir)
    summary.update(failed_runs=failed, waiting_methods=waiting)
    if failed:
        warnings.warn(
            f"{len(failed)} run(s) failed twice (errors in {output_dir / 'failed'}); they are "
            f"left out of the report{f' and the final runs of {waiting} wait for their validation grid' if waiting else ''}. "
            "Re-run the same command to retry them; finished runs are kept.", stacklevel=2)
    return summary


def report_finished(config: ExperimentConfig) -> dict[str, Any]:
    """Write the report from the runs already finished in ``config.output_dir``; run nothing.

    For a grid that is still running or was stopped: every table cell says over how many
    seeds (``n``) it was computed.
    """
    from alpha_mas_avalanche.experiment import report as reporting

    output_dir = Path(config.output_dir)
    select, singles = selection_specs(config), single_task_specs(config)
    first = {s.run_id: r for s in select + singles
             if (r := read_record(spec_path(output_dir, s))) is not None}
    chosen = choose_hyperparameters(config, first)
    finished = [r for s in final_specs(config, chosen)
                if (r := read_record(spec_path(output_dir, s))) is not None]
    if not finished:
        raise ValueError(f"output_dir {output_dir}: no finished final run to report on yet")
    return reporting.write_report(output_dir, finished,
                                  [first[s.run_id] for s in singles if s.run_id in first],
                                  config=config, selection=chosen)
