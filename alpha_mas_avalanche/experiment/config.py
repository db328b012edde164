"""Experiments as data: :class:`ExperimentConfig`, loaded from and saved to YAML."""
from __future__ import annotations

import collections.abc
import copy
import inspect
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from alpha_mas_avalanche.data.names import (
    BENCHMARKS,
    N_TASKS,
    SCENARIOS,
    check_scenario,
    check_task_order,
    n_tasks,
)
from alpha_mas_avalanche.experiment.atomic import write_text_atomic
from alpha_mas_avalanche.experiment.devices import AMP_MODES, check_device
from alpha_mas_avalanche.experiment.methods import (
    accepted_params,
    build_method,
    check_exclusive,
    check_method_name,
    check_param_names,
    get_entry,
)
from alpha_mas_avalanche.experiment.names import check_keys, check_name, listing, suggestion
from alpha_mas_avalanche.experiment.records import SINGLE_TASK
from alpha_mas_avalanche.model_names import MODELS
from alpha_mas_avalanche.validation import (
    check_finite_float,
    check_non_negative_int,
    check_positive_int,
)

WANDB_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A run that cannot be built from its config (a bad hyperparameter): the same on every
    attempt, so it is reported as a config error and never retried."""
OPTIMIZERS = ("adam", "sgd")
DEFAULT_MODEL = {"split_mnist": "mlp", "split_digits": "mlp", "split_mnist_hsu2018": "mlp",
                 "split_mnist_scaled": "mlp", "split_cifar10": "cnn", "split_cifar10_jpeg": "cnn", "permuted_mnist": "mlp",
                 "permuted_mnist_20": "mlp", "rotated_mnist": "mlp", "rotated_mnist_20": "mlp"}


@dataclass
class MethodConfig:
    """One method of the comparison.

    Attributes:
        name: a key of the method registry.
        params: fixed hyperparameters (over the registry defaults).
        sweep: ``{param: [values]}``: every value is run and reported as its own row.
        select: ``{param: [values]}``: grid evaluated on the validation stream; the best
            (highest final average validation accuracy, mean over selection seeds) is
            then run on the test stream.
        task_orders: task orders for this method (None: the experiment's ``task_orders``).
        seeds: seeds of this method's final runs (None: the experiment's ``seeds``), e.g.
            more seeds for the methods a comparison turns on.
        refine: once the decade grid of ``select`` has settled, also try the chosen value
            x 10^(-2/3), 10^(-1/3), 10^(1/3), 10^(2/3) (:mod:`.selection`).
        selection_seeds: seeds of this method's validation-grid runs (None: the experiment's).
        sensitivity: also run every value of the final ``select`` grid on the test stream at
            the method's first three seeds: validation and test accuracy against the strength
            (the report's sensitivity figure).
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, list] = field(default_factory=dict)
    select: dict[str, list] = field(default_factory=dict)
    task_orders: list[list[int]] | None = None
    seeds: list[int] | None = None
    refine: bool = False
    selection_seeds: list[int] | None = None
    sensitivity: bool = False

    def __post_init__(self) -> None:
        check_method_names(self.name, self.params, self.sweep, self.select)
        for kind in ("sweep", "select"):
            for key, values in getattr(self, kind).items():
                if not isinstance(values, list) or not values:
                    raise ValueError(
                        f"methods[{self.name}].{kind}.{key}: expected a non-empty list, got {values!r}"
                    )
        overlap = set(self.sweep) & set(self.select)
        if overlap:
            raise ValueError(
                f"methods[{self.name}]: {sorted(overlap)} both swept and selected; choose one"
            )
        if self.task_orders is not None:
            self.task_orders = _check_orders(f"methods[{self.name}].task_orders", self.task_orders)
        if self.seeds is not None:
            self.seeds = _check_seeds(f"methods[{self.name}].seeds", self.seeds)
        if self.selection_seeds is not None:
            self.selection_seeds = _check_seeds(f"methods[{self.name}].selection_seeds",
                                                self.selection_seeds)
        for flag in ("refine", "sensitivity"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"methods[{self.name}].{flag}: expected true or false, "
                                 f"got {getattr(self, flag)!r}")
        if self.sensitivity and not self.select:
            raise ValueError(f"methods[{self.name}].sensitivity: true needs a select grid")
        if self.refine and (len(self.select) != 1 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for values in self.select.values() for v in values)):
            raise ValueError(f"methods[{self.name}].refine: true needs a select grid of one "
                             f"parameter with positive numbers, got select={self.select!r}")
        check_method_params(self)

    @classmethod
    def default(cls, name: str, *, select: bool = True, **changes: Any) -> MethodConfig:
        """The registry's default sweep (and, with ``select``, its validation grid)."""
        entry = get_entry(name)
        config = cls(name, sweep=copy.deepcopy(entry.sweep),
                     select=copy.deepcopy(entry.select) if select else {})
        for key, value in changes.items():
            setattr(config, key, value)
        config.__post_init__()
        return config


@dataclass
class ExperimentConfig:
    """Everything that defines a comparison; ``run_experiment(config)`` runs it.

    ``model=None`` picks the reference model (MLP 2x400 for MNIST/digits, CNN for
    CIFAR-10). ``train_samples_per_task``/``eval_samples_per_task`` take seeded random
    subsets (None: all data). ``first_task_epochs``/``first_task_lr``/``first_task_batch_size``
    (None: as every task) train the first experience, and every model trained from scratch
    (the single-task references), with another schedule, as the MAS reference code does
    (10 epochs at lr 0.01, batch 200, then 20 at lr 0.001, batch 150). ``selection_seeds`` (None: the first seed) are the seeds of
    the validation-grid runs. ``grid_extensions``: how many decades a validation grid may
    grow on each side when its best value is at an edge (0: never). ``device``: where runs
    train (``cpu``, ``cuda``, ``cuda:<index>``, ``mps``); ``amp``: autocast precision of
    forward and loss (``off``, ``bf16``, ``fp16`` with a ``GradScaler``);
    ``deterministic``: torch's deterministic algorithms (see docs/gpu.md).
    ``rerun_uncommitted``: methods whose records name no commit (made before commits were
    recorded) move to ``retired/`` when the grid starts, so it runs them again at today's code;
    the entry ``single_task`` does the same for the single-task references
    (``retired/single_task/``).
    """

    name: str = "compare_baselines"
    benchmark: str = "split_mnist"
    scenario: str = "task"
    model: str | None = None
    methods: list[MethodConfig] = field(default_factory=lambda: [MethodConfig("naive")])
    epochs: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 128
    first_task_epochs: int | None = None
    first_task_lr: float | None = None
    first_task_batch_size: int | None = None
    eval_batch_size: int = 512
    seeds: list[int] = field(default_factory=lambda: [0])
    task_orders: list[list[int]] | None = None
    validation_size: float = 0.1
    train_samples_per_task: int | None = None
    eval_samples_per_task: int | None = None
    selection_seeds: list[int] | None = None
    grid_extensions: int = 2
    data_root: str | None = None
    device: str = "cpu"
    amp: str = "off"
    deterministic: bool = False
    rerun_uncommitted: list[str] = field(default_factory=list)
    output_dir: str = "out/compare_baselines"
    wandb: str = "disabled"
    wandb_project: str = "alpha-mas-avalanche"

    def __post_init__(self) -> None:
        # names first, from static tables: a typo answers before torch is imported
        if not isinstance(self.methods, list) or not self.methods:
            raise ValueError(f"methods: expected a non-empty list of methods, got {self.methods!r}")
        for i, method in enumerate(self.methods):
            if not isinstance(method, MethodConfig):
                _check_method_data(i, method)
        check_name("benchmark", self.benchmark, BENCHMARKS)
        check_name("scenario", self.scenario, SCENARIOS)
        check_scenario(self.benchmark, self.scenario)
        if self.model is None:
            self.model = DEFAULT_MODEL[self.benchmark]
        check_name("model", self.model, MODELS)
        names = [m.name if isinstance(m, MethodConfig) else m if isinstance(m, str) else m["name"]
                 for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"methods: each method at most once, got {names}")
        check_positive_int("epochs", self.epochs)
        check_finite_float("lr", self.lr, positive=True)
        check_name("optimizer", self.optimizer, OPTIMIZERS)
        check_positive_int("batch_size", self.batch_size)
        for key in ("first_task_epochs", "first_task_batch_size"):
            if getattr(self, key) is not None:
                check_positive_int(key, getattr(self, key), extra="or None (as every task)")
        if self.first_task_lr is not None:
            check_finite_float("first_task_lr", self.first_task_lr, positive=True)
        check_positive_int("eval_batch_size", self.eval_batch_size)
        self.seeds = _check_seeds("seeds", self.seeds)
        if self.selection_seeds is not None:
            self.selection_seeds = _check_seeds("selection_seeds", self.selection_seeds)
        check_non_negative_int("grid_extensions", self.grid_extensions)
        if not isinstance(self.rerun_uncommitted, list) or any(
                m not in names + [SINGLE_TASK] for m in self.rerun_uncommitted):
            raise ValueError(f"rerun_uncommitted: expected a list of this config's method "
                             f"names {names} or {SINGLE_TASK!r} (the single-task references), "
                             f"got {self.rerun_uncommitted!r}")
        n = n_tasks(self.benchmark)
        if self.task_orders is None:
            self.task_orders = [list(range(n))]
        self.task_orders = _check_orders("task_orders", self.task_orders, n)
        for method in self.methods:
            orders = getattr(method, "task_orders", None) if isinstance(method, MethodConfig) \
                else method.get("task_orders") if isinstance(method, dict) else None
            if orders is not None:
                name = method.name if isinstance(method, MethodConfig) else method.get("name")
                _check_orders(f"methods[{name}].task_orders", orders, n)
        check_finite_float("validation_size", self.validation_size)
        if not 0 < self.validation_size < 1:
            raise ValueError(f"validation_size: expected a fraction in (0, 1), got {self.validation_size!r}")
        for key in ("train_samples_per_task", "eval_samples_per_task"):
            if getattr(self, key) is not None:
                check_positive_int(key, getattr(self, key), extra="or None (all samples)")
        check_device("device", self.device)
        check_name("amp", self.amp, AMP_MODES)
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic: expected true or false, got {self.deterministic!r}")
        check_name("wandb", self.wandb, WANDB_MODES)
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"output_dir: expected a folder path, got {self.output_dir!r}")
        # then the checks that build the plugins (these import torch)
        self.methods = [m if isinstance(m, MethodConfig) else _method_from(m) for m in self.methods]

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def all_seeds(self) -> list[int]:
        """Every seed a final run uses: ``seeds``, then the methods' own extra seeds."""
        seeds = list(self.seeds)
        for method in self.methods:
            seeds += [s for s in method.seeds or () if s not in seeds]
        return seeds

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        if not isinstance(data, dict):
            raise ValueError(f"config: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        check_keys("config", data, known)
        return cls(**copy.deepcopy(data))

    def save(self, path: str | Path) -> None:
        """Write the config as YAML, atomically: a resumed grid reads it back."""
        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def check_method_params(method: MethodConfig) -> None:
    """Every name in ``params``/``sweep``/``select`` is a parameter of the method's plugin
    constructor (the error lists the accepted names), every value has the type the
    constructor's annotation (else the registry default) asks for and lies in the entry's
    ``ranges``, and the plugins build with the params and each grid's first value (and with
    every value of a grid whose parameter has no range): a bad config fails at load time,
    not when its run starts. Methods whose builder declares no constructor are not checked."""
    accepted = accepted_params(method.name)
    if accepted is None:
        return
    entry = get_entry(method.name)
    for kind in ("params", "sweep", "select"):
        for key, value in getattr(method, kind).items():
            where = f"methods[{method.name}].{kind}.{key}"
            if key not in accepted:  # a method registered at run time: not in the static table
                names = listing(accepted) or "none (it takes no hyperparameters)"
                raise ValueError(f"{where}: {method.name} has no parameter {key!r}"
                                 f"{suggestion(key, accepted)}; accepted: {names}")
            default = entry.defaults.get(key, accepted[key].default)
            for item in ([value] if kind == "params" else value):
                _check_param_type(where, accepted[key].annotation, default, item)
                if key in entry.ranges and isinstance(item, (int, float)):  # not a list form
                    check_finite_float(f"{where}={item!r}" if kind != "params" else where, item,
                                       **{entry.ranges[key]: True})
    first = {key: values[0] for kind in ("sweep", "select")
             for key, values in getattr(method, kind).items()}
    grid = [(kind, key, value) for kind in ("sweep", "select")
            for key, values in getattr(method, kind).items() if key not in entry.ranges
            for value in values[1:]]
    for kind, key, value in [("params", None, None)] + grid:
        params = {**method.params, **first} if key is None else \
            {**method.params, **first, key: value}
        try:
            build_method(method.name, params, N_TASKS)
        except (TypeError, ValueError) as err:
            where = f"methods[{method.name}]" + ("" if key is None else f".{kind}.{key}={value!r}")
            raise ValueError(f"{where}: {entry.label} cannot be built with params {params}: "
                             f"{err}") from err


def _check_param_type(where: str, annotation: Any, default: Any, value: Any) -> None:
    if annotation is inspect.Parameter.empty:  # the default's type, where it says one
        annotation = (bool if isinstance(default, bool) else float if isinstance(default, (int, float))
                      else str if isinstance(default, str) else inspect.Parameter.empty)
    if _matches(value, annotation) is not False:
        return
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = (f" (YAML reads {value} as a string; write it with a dot and a signed "
                    "exponent, e.g. 1.0e+5)")
        except ValueError:
            pass
    raise ValueError(f"{where}: expected {_describe(annotation)}, got {value!r}{hint}")


def _matches(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` fits ``annotation``; None where the annotation is not one we read."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, a) for a in typing.get_args(annotation)]
        return True if True in results else None if None in results else False
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (collections.abc.Sequence, list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(annotation)
        results = [_matches(v, args[0]) for v in value] if args else [None]
        return False if False in results else None if None in results else True
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return callable(value)
    return None


def _describe(annotation: Any) -> str:
    names = {bool: "true or false", int: "an int", float: "a real number", str: "a string",
             type(None): "null"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if origin in (collections.abc.Sequence, list, tuple):
        args = typing.get_args(annotation)
        return "a list" + (f" of ({_describe(args[0])})" if args else "")
    if origin is collections.abc.Callable:
        return "a callable (Python configs only)"
    return str(annotation)


def check_method_names(name: Any, params: Any, sweep: Any, select: Any, where: str = "methods") -> None:
    """The method's name, the shapes of its params/sweep/select and every parameter name in
    them, from the static table of :mod:`.names` (no torch)."""
    check_method_name(f"{where}.name" if where != "methods" else "method name", name)
    for kind, value in (("params", params), ("sweep", sweep), ("select", select)):
        if not isinstance(value, dict):
            what = "a mapping" if kind == "params" else "a mapping param -> list of values"
            raise ValueError(f"methods[{name}].{kind}: expected {what}, got {value!r}")
        check_param_names(name, kind, value)
    check_exclusive(name, {*params, *sweep, *select})


def _check_method_data(index: int, data: Any) -> None:
    """``methods[index]`` as read from a file: a name, or a mapping of MethodConfig's keys."""
    where = f"methods[{index}]"
    if isinstance(data, str):
        check_method_name(where, data)
        return
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a method name or a mapping, got {data!r}")
    check_keys(where, data, [f.name for f in fields(MethodConfig)])
    if "name" not in data:
        raise ValueError(f"{where}: a method needs a 'name'")
    check_method_names(data["name"], data.get("params", {}), data.get("sweep", {}),
                       data.get("select", {}), where)


def _method_from(data: Any) -> MethodConfig:
    return MethodConfig(data) if isinstance(data, str) else MethodConfig(**data)


def _check_seeds(name: str, seeds: Any) -> list[int]:
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{name}: expected a non-empty list of ints >= 0, got {seeds!r}")
    for seed in seeds:
        check_non_negative_int(name, seed)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name}: expected distinct seeds, got {seeds!r}")
    return list(seeds)


def _check_orders(name: str, orders: Any, n: int | None = None) -> list[list[int]]:
    """Task orders: permutations of ``0..n-1`` (``n`` None: of their own length)."""
    if not isinstance(orders, list) or not orders:
        raise ValueError(f"{name}: expected a non-empty list of task orders")
    checked = []
    for order in orders:
        try:
            length = n if n is not None else len(order) if isinstance(order, (list, tuple)) else N_TASKS
            checked.append(check_task_order(order, length))
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
    return checked
