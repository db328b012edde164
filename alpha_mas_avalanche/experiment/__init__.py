"""The comparison harness: configs, the method registry, the grid runner and reports."""
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.methods import REGISTRY, available_methods, register
from alpha_mas_avalanche.experiment.runner import RunSpec, execute_run, run_experiment

__all__ = ["ExperimentConfig", "MethodConfig", "REGISTRY", "available_methods", "register",
           "RunSpec", "execute_run", "run_experiment"]
