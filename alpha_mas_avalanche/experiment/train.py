"""One run: :func:`execute_run` trains and evaluates a :class:`RunSpec` with Avalanche and
returns its JSON-ready record; no files, no W&B, so any executor can ship it anywhere."""
from __future__ import annotations

import functools
import time
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from alpha_mas_avalanche.amp import amp_strategy
from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.data.names import classes_per_task, n_tasks
from alpha_mas_avalanche.experiment.config import ConfigError
from alpha_mas_avalanche.experiment.devices import configure_determinism, loader_options
from alpha_mas_avalanche.experiment.heldout import HeldOutAccuracy
from alpha_mas_avalanche.experiment.methods import build_method, method_label
from alpha_mas_avalanche.experiment.metrics import (
    TrainingRecorder,
    epoch_curve,
    exp_accuracies,
    make_evaluator,
    metric_value,
    per_exp,
)
from alpha_mas_avalanche.experiment.specs import RunSpec
from alpha_mas_avalanche.experiment.store import RESULT_FORMAT, run_provenance, sanitize
from alpha_mas_avalanche.models import count_parameters, make_model
from alpha_mas_avalanche.plugins.quadratic import TrainingDivergedError


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


def task_schedule(spec: RunSpec, first: bool) -> tuple[int, float, int]:
    """``(epochs, lr, batch size)`` of an experience: the ``first_task_*`` settings where set
    for the first experience (and for any model trained from scratch), else the run's."""
    if not first:
        return spec.epochs, spec.lr, spec.batch_size
    return (spec.epochs if spec.first_task_epochs is None else spec.first_task_epochs,
            spec.lr if spec.first_task_lr is None else spec.first_task_lr,
            spec.batch_size if spec.first_task_batch_size is None else spec.first_task_batch_size)


def _apply_schedule(strategy, spec: RunSpec, first: bool) -> int:
    """Set the strategy's epochs, mini-batch size and learning rate for the next experience;
    return its epochs."""
    epochs, lr, batch_size = task_schedule(spec, first)
    strategy.train_epochs, strategy.train_mb_size = epochs, batch_size
    for group in strategy.optimizer.param_groups:
        group["lr"] = lr
    return epochs


def _training_parts(spec: RunSpec, bm, plugins: list, progress_total: int):
    seed_everything(spec.seed)
    input_shape = tuple(bm.train_stream[0].dataset[0][0].shape)
    model = make_model(spec.model, input_shape=input_shape, scenario=spec.scenario,
                       classes_per_task=classes_per_task(spec.benchmark))
    if spec.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9)
    evaluator = make_evaluator()
    recorder = TrainingRecorder(plugins, progress_total if spec.show_progress else 0,
                                spec.run_id)
    return model, optimizer, evaluator, recorder


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Train and evaluate one run; return its record (JSON-ready, finite numbers only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        warnings.filterwarnings("ignore", message="stream generator")
        configure_determinism(spec.deterministic)
        started = time.perf_counter()
        try:
            record = _single_task(spec) if spec.phase == "single_task" else _sequence(spec)
        except TrainingDivergedError as err:
            if spec.phase != "select" and not spec.curve_point:
                raise
            record = diverged_record(spec, err)
    record.update(
        run_id=spec.run_id, spec=asdict(spec), format=RESULT_FORMAT,
        wall_time_s=time.perf_counter() - started, **run_provenance(spec.device, spec.amp),
    )
    return sanitize(record)


def diverged_record(spec: RunSpec, error: Exception) -> dict[str, Any]:
    """The record of a validation-grid or sensitivity-curve run whose training diverged: a
    finished result (its strength is unusable, the grid's choice ranks it last, the curve
    marks it) with no accuracy."""
    return {"method": spec.method, "label": method_label(spec.method, spec.params),
            "params": spec.params, "seed": spec.seed, "task_order": spec.task_order,
            "eval_stream": spec.eval_stream, "final_avg_acc": None, "diverged": str(error)}


def _strategy(kind: str, model, optimizer, spec: RunSpec, plugins: list, evaluator):
    from avalanche.training import JointTraining, Naive

    cls = JointTraining if kind == "joint" else Naive
    options = dict(
        model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=spec.batch_size, train_epochs=spec.epochs,
        eval_mb_size=spec.eval_batch_size, device=spec.device, plugins=plugins,
        evaluator=evaluator, eval_every=-1,
    )
    if spec.amp == "off":
        return cls(**options)
    return amp_strategy(cls)(amp=spec.amp, **options)


def _sequence(spec: RunSpec) -> dict[str, Any]:
    bm = _benchmark_for(spec)
    try:
        kind, plugins = build_method(spec.method, spec.params, n_tasks(spec.benchmark))
    except (TypeError, ValueError) as err:  # the same every time: not worth a retry
        raise ConfigError(f"methods[{spec.method}] with params {spec.params}: {err}") from err
    eval_stream = bm.valid_stream if spec.eval_stream == "valid" else bm.test_stream
    n_exps = len(bm.train_stream)
    epochs = [spec.epochs] if kind == "joint" else \
        [task_schedule(spec, i == 0)[0] for i in range(n_exps)]
    model, optimizer, evaluator, recorder = _training_parts(spec, bm, plugins, sum(epochs))
    heldout = HeldOutAccuracy(bm.valid_stream, spec.eval_batch_size, joint=kind == "joint")
    strategy = _strategy(kind, model, optimizer, spec, plugins + [recorder, heldout], evaluator)
    try:
        rows, train_time = _train_and_evaluate(kind, strategy, bm, eval_stream, evaluator, spec)
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
        "avalanche_forgetting": metric_value(last, f"StreamForgetting/eval_phase/{stream}_stream"),
        "avalanche_bwt": metric_value(last, f"StreamBWT/eval_phase/{stream}_stream"),
        "avalanche_forgetting_by_exp": per_exp(last, "ExperienceForgetting", stream, n_exps),
        "epochs": epoch_curve(evaluator.get_all_metrics(), epochs),
        # after every epoch: accuracy on the validation split of each task seen so far
        "heldout_per_epoch": heldout.points,
        "penalty_per_epoch": recorder.penalty_per_epoch,
        "alphas_per_experience": recorder.alphas,
        "importance_totals_per_experience": recorder.totals,
        "train_time_s": train_time,
    }


def _train_and_evaluate(kind: str, strategy, bm, eval_stream, evaluator,
                        spec: RunSpec) -> tuple[list[dict[int, float]], float]:
    """Train on the sequence (or jointly); the accuracy per position after each experience
    (``rows``) and the time spent training."""
    loading = loader_options(spec.device)
    train_time = 0.0
    rows: list[dict[int, float]] = []
    if kind == "joint":
        start = time.perf_counter()
        strategy.train(bm.train_stream, **loading)
        train_time += time.perf_counter() - start
        strategy.eval(eval_stream, **loading)
        rows.append(exp_accuracies(evaluator.get_last_metrics()))
    else:
        for i, experience in enumerate(bm.train_stream):
            _apply_schedule(strategy, spec, i == 0)
            # same minibatch order for every method, whatever RNG its plugin draws
            seed_everything(experience_seed(spec.seed, i))
            start = time.perf_counter()
            strategy.train(experience, **loading)
            train_time += time.perf_counter() - start
            strategy.eval(eval_stream[: i + 1], **loading)
            rows.append(exp_accuracies(evaluator.get_last_metrics()))
    return rows, train_time


def _single_task(spec: RunSpec) -> dict[str, Any]:
    bm = _benchmark_for(spec)
    eval_stream = bm.valid_stream if spec.eval_stream == "valid" else bm.test_stream
    model, optimizer, evaluator, recorder = _training_parts(
        spec, bm, [], task_schedule(spec, True)[0])
    strategy = _strategy("naive", model, optimizer, spec, [recorder], evaluator)
    _apply_schedule(strategy, spec, True)  # trained from scratch, as the first task
    loading = loader_options(spec.device)
    try:
        strategy.train(bm.train_stream[spec.pair], **loading)
        strategy.eval(eval_stream[spec.pair: spec.pair + 1], **loading)
    finally:
        recorder.close()
    accuracies = exp_accuracies(evaluator.get_last_metrics())
    return {"pair": spec.pair, "seed": spec.seed, "acc": accuracies[spec.pair],
            "task_classes": list(bm.task_classes[spec.pair])}
