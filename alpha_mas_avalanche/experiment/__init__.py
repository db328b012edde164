"""The comparison harness: configs, the method registry, the grid runner and reports.

Map: :mod:`.config` (YAML configs), :mod:`.methods` (the registry), :mod:`.specs` (the grid
as RunSpecs, hyperparameter choice), :mod:`.train` (one run), :mod:`.metrics` (what a run
measures), :mod:`.store` (result files), :mod:`.executors` (where runs execute),
:mod:`.grid` (phases, resume, progress), :mod:`.report` (tables, statistics),
:mod:`.figures` (plots), :mod:`.wandb_logging` (W&B). ``execute_run`` and
``run_experiment`` (which need torch and Avalanche) are imported on first use.
"""
from __future__ import annotations

from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.methods import REGISTRY, available_methods, register
from alpha_mas_avalanche.experiment.specs import RunSpec
from alpha_mas_avalanche.lazy import lazy_exports

_LAZY = {"execute_run": "train", "run_experiment": "grid"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = ["ExperimentConfig", "MethodConfig", "REGISTRY", "available_methods", "register",
           "RunSpec", "execute_run", "run_experiment"]
