"""The grid of a comparison as :class:`RunSpec` s: validation-grid, single-task and final runs,
and the choice of each method's hyperparameters from its validation runs."""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alpha_mas_avalanche.data import N_TASKS
from alpha_mas_avalanche.experiment.config import ExperimentConfig


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
