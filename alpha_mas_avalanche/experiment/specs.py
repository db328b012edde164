"""The grid of a comparison as :class:`RunSpec` s: single-task and final runs (the
validation-grid runs and the choice from them are in :mod:`.selection`)."""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any


from alpha_mas_avalanche.data.names import n_tasks
from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.devices import device_type


#: The compute settings of every run recorded before they were recorded.
COMPUTE_DEFAULTS = {"device_type": "cpu", "amp": "off", "deterministic": False}


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
    first_task_epochs: int | None = None
    first_task_lr: float | None = None
    first_task_batch_size: int | None = None
    method: str = "naive"
    params: dict[str, Any] = field(default_factory=dict)
    eval_stream: str = "test"
    phase: str = "final"  # "select" | "final" | "single_task"
    pair: int | None = None  # single_task: the pair trained alone
    show_progress: bool = False
    amp: str = "off"  # autocast precision of forward and loss: "off" | "bf16" | "fp16"
    deterministic: bool = False
    #: a sensitivity-curve run away from the chosen value: a divergence is its result (that
    #: strength is unusable), as in a validation-grid run, not a failure
    curve_point: bool = False

    @property
    def run_id(self) -> str:
        order = "".join(map(str, self.task_order))
        if self.phase == "single_task":
            return f"single__{self.benchmark}__{self.scenario}__pair{self.pair}__seed{self.seed}__{self.eval_stream}__{self.settings_key()}"
        params = "_".join(f"{k}={_slug(v)}" for k, v in sorted(self.params.items())) or "default"
        return f"{self.phase}__{self.method}__{params}__seed{self.seed}__order{order}"

    def settings_key(self) -> str:
        """Short hash of the training settings shared by the whole grid, the device type
        and the precision included (CPU, full precision, non-deterministic: left out of
        the hash, so that results recorded before these settings existed keep their key)."""
        import hashlib

        keys = ("model", "epochs", "lr", "optimizer", "batch_size", "validation_size",
                "train_samples_per_task", "eval_samples_per_task")
        settings = {k: getattr(self, k) for k in keys}
        for key in FIRST_TASK_KEYS:  # only where set: the keys of earlier grids stay the same
            if getattr(self, key) is not None:
                settings[key] = getattr(self, key)
        settings.update({k: v for k, v in self.compute_settings().items()
                         if v != COMPUTE_DEFAULTS[k]})
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def compute_settings(self) -> dict[str, Any]:
        """How the run computes: device type, autocast precision, determinism."""
        return {"device_type": device_type(self.device), "amp": self.amp,
                "deterministic": self.deterministic}


FIRST_TASK_KEYS = ("first_task_epochs", "first_task_lr", "first_task_batch_size")


def _slug(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def base_spec(config: ExperimentConfig, seed: int, order: list[int], **more: Any) -> RunSpec:
    """A run of ``config``'s training settings at ``seed`` and task ``order``."""
    return RunSpec(
        benchmark=config.benchmark, scenario=config.scenario, model=config.model,
        epochs=config.epochs, lr=config.lr, optimizer=config.optimizer,
        batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
        validation_size=config.validation_size,
        train_samples_per_task=config.train_samples_per_task,
        eval_samples_per_task=config.eval_samples_per_task,
        data_root=config.data_root, device=config.device, seed=seed, task_order=list(order),
        amp=config.amp, deterministic=config.deterministic,
        **{key: getattr(config, key) for key in FIRST_TASK_KEYS}, **more,
    )


def combinations(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of a ``{param: [values]}`` grid, in order."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def final_specs(config: ExperimentConfig, chosen: dict[str, dict] | None = None) -> list[RunSpec]:
    """Test-stream runs: method x sweep value x seed x task order, at the values chosen on
    validation (a method with a validation grid and no choice yet is left out)."""
    chosen = chosen or {}
    specs = []
    for method in config.methods:
        if method.select and method.name not in chosen:  # waits for its validation grid
            continue
        selected = chosen.get(method.name, {}).get("chosen", {})
        for combo in combinations(method.sweep) if method.sweep else [{}]:
            for order in method.task_orders or config.task_orders:
                for seed in method.seeds or config.seeds:
                    specs.append(base_spec(
                        config, seed, order, method=method.name,
                        params={**method.params, **selected, **combo},
                    ))
    # the main task order first, seed-major: an interrupted grid leaves the main comparison
    # finished over whole seeds before the order-sensitivity runs
    main_order = list(config.task_orders[0])
    seeds = config.all_seeds()
    specs.sort(key=lambda spec: (spec.task_order != main_order, seeds.index(spec.seed)))
    return specs


def single_task_specs(config: ExperimentConfig) -> list[RunSpec]:
    """The reference forgetting's single-task models: one per (seed, pair)."""
    n = n_tasks(config.benchmark)
    return [
        base_spec(config, seed, list(range(n)), phase="single_task", pair=pair)
        for seed in config.all_seeds() for pair in range(n)
    ]


def sensitivity_specs(config: ExperimentConfig, chosen: dict[str, dict]) -> list[RunSpec]:
    """Test-stream runs at every value of the final grid (``chosen[m]["grid"]``) of each
    method with ``sensitivity``, at its first three seeds in the main task order; the runs at
    the chosen value are final runs already (same run ids), the others are ``curve_point``."""
    specs = []
    order = config.task_orders[0]
    for method in config.methods:
        if not method.sensitivity or method.name not in chosen:
            continue
        chosen_params = {**method.params, **chosen[method.name]["chosen"]}
        for combo in combinations(chosen[method.name]["grid"]):
            params = {**method.params, **combo}
            for seed in (method.seeds or config.seeds)[:3]:
                specs.append(base_spec(config, seed, order, method=method.name, params=params,
                                       curve_point=params != chosen_params))
    seeds = config.all_seeds()
    return sorted(specs, key=lambda spec: seeds.index(spec.seed))
