"""The method registry's entries: one :func:`~.method_registry.register` call per method, with
its builder, defaults, validation grid, parameter names and ranges, roles and provenance.

An entry builds ``(strategy, plugins)`` from its hyperparameters and the number of
tasks: ``strategy`` is ``"naive"`` (Avalanche ``Naive`` + the plugins) or ``"joint"``
(Avalanche ``JointTraining``). Adding a method is one :func:`register` call here.

Each entry states where its hyperparameters come from (``provenance``): chosen on the
validation stream by the grid in ``select`` (the default grid of the ``--full`` preset),
or fixed with a cited source. Everything the registry offers is importable from here.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from alpha_mas_avalanche.experiment.method_registry import (
    FAMILIES,
    FAMILY_TITLES,
    REGISTRY,
    ROLES,
    MethodEntry,
    _takes,
    accepted_params,
    available_methods,
    baseline_method,
    build_method,
    check_exclusive,
    check_method_name,
    check_param_names,
    family_of,
    get_entry,
    is_available,
    method_label,
    register,
    trains_once,
    with_defaults,
    with_role,
)

#: AlphaMASPlugin's constructor arguments
_ALPHA_MAS = ("lambda_reg", "lambda_mode", "alpha_scaling", "exact_importance", "importance_data",
              "max_importance_samples", "importance_batch_size", "importance_from",
              "importance_epochs", "penalty_gradient", "anchor")
LAMBDA_PAIR = ("lambda_reg", "lambda_multiplier",
               "both set the strength: lambda_reg is lambda itself, lambda_multiplier is lambda / N "
               "(N = the number of tasks)")


#: the range of a MAS strength
STRENGTH = {"lambda_reg": "positive"}


def _without(names: tuple[str, ...], *dropped: str) -> tuple[str, ...]:
    return tuple(n for n in names if n not in dropped)


@_takes("alpha_mas_avalanche.plugins.alpha_mas", "AlphaMASPlugin", extra={"lambda_multiplier": float})
def _alpha_mas(params: dict[str, Any], n_tasks: int) -> list:
    """AlphaMAS with lambda = ``lambda_multiplier`` x N, or ``lambda_reg`` itself (one of the
    two, see the entry's ``exclusive``); ``lambda_mode`` "fixed" unless given."""
    from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin

    params = {"lambda_mode": "fixed", **params}
    multiplier = params.pop("lambda_multiplier", None)
    if multiplier is not None:
        if "lambda_reg" in params:
            raise ValueError("give lambda_reg or lambda_multiplier, not both")
        params["lambda_reg"] = float(multiplier) * n_tasks
    return [AlphaMASPlugin(**params)]


@_takes("alpha_mas_avalanche.plugins.alpha_mas", "AlphaMASPlugin", fixed=("lambda_mode",))
def _alpha_mas_per_task(params: dict[str, Any], n_tasks: int) -> list:
    from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin

    return [AlphaMASPlugin(lambda_mode="per_task", **params)]


@_takes("alpha_mas_avalanche.plugins.alpha_mas", "AlphaMASPlugin", fixed=("alpha_scaling",))
def _plain_mas(params: dict[str, Any], n_tasks: int) -> list:
    from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin

    return [AlphaMASPlugin(alpha_scaling=False, **params)]


@_takes("alpha_mas_avalanche.plugins.alpha_mas", "AlphaMASPlugin",
        fixed=("alpha_scaling", "anchor", "lambda_mode"))
def _reference_code_mas(params: dict[str, Any], n_tasks: int) -> list:
    from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin

    return [AlphaMASPlugin(alpha_scaling=False, anchor="latest", **params)]


def _plugin(module: str, cls: str, **fixed: Any) -> Callable[[dict[str, Any], int], list]:
    @_takes(module, cls, fixed=tuple(fixed))
    def build(params: dict[str, Any], n_tasks: int) -> list:
        plugin_class = getattr(importlib.import_module(module), cls)
        return [plugin_class(**fixed, **params)]

    return build


@_takes()
def _none(params: dict[str, Any], n_tasks: int) -> list:
    if params:
        raise ValueError(f"this method takes no hyperparameters, got {sorted(params)}")
    return []


REG_GRID = [0.1, 1.0, 10.0, 100.0, 1000.0]
#: Avalanche's EWCPlugin sums squared mini-batch gradients (a batched Fisher), so the
#: per-sample-Fisher values of the literature (van de Ven: 1e7 task-IL) do not transfer.
EWC_GRID = [1e2, 1e3, 1e4, 1e5, 1e6, 1e7]

register(MethodEntry(
    "alpha_mas", "AlphaMAS", "naive", _alpha_mas,
    roles=("deciding",),
    ranges={"lambda_reg": "positive", "lambda_multiplier": "positive"},
    params=_ALPHA_MAS + ("lambda_multiplier",),
    exclusive=(LAMBDA_PAIR,),
    defaults={"lambda_reg": 1.0},
    select={"lambda_reg": REG_GRID},
    provenance="lambda (= sum_t alpha_t) chosen on the validation stream, with the same grid, "
               "selection seeds and extension rule as MAS.",
    family="alpha_mas",
    colour="YlOrRd", marker="o",
))
register(MethodEntry(
    "alpha_mas_writeup", "AlphaMAS (write-up's λ)", "naive", _alpha_mas,
    ranges={"lambda_reg": "positive", "lambda_multiplier": "positive"},
    params=_ALPHA_MAS + ("lambda_multiplier",),
    exclusive=(LAMBDA_PAIR,),
    defaults={"lambda_multiplier": 1.0},
    sweep={"lambda_multiplier": [1.0, 1.5, 2.0, 3.0]},
    provenance="lambda = N, 1.5N, 2N, 3N (N tasks): the reference write-up's sweep, the "
               "strengths its claims are made at; every value is reported, none is selected.",
    family="alpha_mas",
    colour="YlOrRd", marker="p",
))
register(MethodEntry(
    "alpha_mas_last_epochs", "AlphaMAS, importance over last epochs", "naive", _alpha_mas,
    ranges={"lambda_reg": "positive", "lambda_multiplier": "positive"},
    params=_ALPHA_MAS + ("lambda_multiplier",),
    exclusive=(LAMBDA_PAIR,),
    defaults={"lambda_multiplier": 1.0, "importance_from": "last_epochs", "importance_epochs": 1},
    sweep={"lambda_multiplier": [1.0]},
    provenance="the reference write-up's estimate over the last training epochs "
               "(importance_epochs=1 unless set); lambda = N as the main AlphaMAS row.",
    family="alpha_mas",
    colour="YlOrRd", marker="h",
))
register(MethodEntry(
    "alpha_mas_per_task", "AlphaMAS (per-task)", "naive", _alpha_mas_per_task,
    roles=("deciding",),
    ranges=STRENGTH,
    params=_without(_ALPHA_MAS, "lambda_mode"),
    defaults={"lambda_reg": 1.0},
    select={"lambda_reg": REG_GRID},
    provenance="ablation: lambda_mode='per_task' (sum_t alpha_t = lambda x the number of "
               "earlier tasks, MAS's total strength at the same lambda), so only the "
               "redistribution across tasks differs from MAS; its own lambda chosen on the "
               "validation stream like MAS's.",
    family="alpha_mas",
    colour="YlOrRd", marker="D",
))
register(MethodEntry(
    "mas", "MAS", "naive", _plain_mas,
    roles=("baseline",),
    ranges=STRENGTH,
    params=_without(_ALPHA_MAS, "alpha_scaling"),
    defaults={"lambda_reg": 1.0},
    select={"lambda_reg": REG_GRID},
    provenance="plain MAS with per-task anchors (the reference baseline, alpha_t = lambda); "
               "lambda chosen on the validation stream from the grid.",
    family="mas",
    colour="#1f77b4", marker="s",
))
register(MethodEntry(
    "mas_reference", "MAS (reference code)", "naive", _reference_code_mas,
    roles=("writeup_baseline",),
    ranges=STRENGTH,
    params=_without(_ALPHA_MAS, "alpha_scaling", "anchor", "lambda_mode"),
    defaults={"lambda_reg": 1.0},
    select={"lambda_reg": REG_GRID},
    provenance="MAS as Aljundi et al.'s reference code runs it (MAS_based_Training.py, "
               "'standard' accumulation): each task's Omega added to the stored sum, one "
               "anchor, the latest task's parameters; importance exact per sample in eval "
               "mode (theirs: |batch gradient|); lambda chosen on the validation stream.",
    family="mas",
    colour="#c49c94", marker="H",
))
register(MethodEntry(
    "avalanche_mas", "MAS (Avalanche)", "naive",
    _plugin("alpha_mas_avalanche.plugins.avalanche_mas", "AvalancheMASPlugin"),
    ranges={"lambda_reg": "non_negative"},
    params=("lambda_reg", "alpha", "verbose"),
    defaults={"lambda_reg": 1.0, "alpha": 0.5},
    select={"lambda_reg": REG_GRID},
    provenance="Avalanche MASPlugin (AvalancheMASPlugin: the same but for its truth test of the "
               "loss, which raised on a mini-batch loss of exactly 0); lambda_reg chosen on the "
               "validation stream from the grid; alpha (importance EMA decay) kept at "
               "Avalanche's default 0.5.",
    family="mas",
    colour="#aec7e8", marker="d",
))
register(MethodEntry(
    "ewc", "EWC", "naive",
    _plugin("avalanche.training.plugins", "EWCPlugin", mode="separate"),
    ranges={"ewc_lambda": "non_negative"},
    params=("ewc_lambda", "decay_factor", "keep_importance_data"),
    defaults={"ewc_lambda": 100.0},
    select={"ewc_lambda": EWC_GRID},
    provenance="Avalanche EWCPlugin, separate penalties (Kirkpatrick et al. 2017); "
               "ewc_lambda chosen on the validation stream from the grid (Avalanche's "
               "batched Fisher: searched, not copied from per-sample-Fisher papers).",
    family="quadratic",
    colour="#2ca02c", marker="^",
))
register(MethodEntry(
    "online_ewc", "Online EWC", "naive",
    _plugin("avalanche.training.plugins", "EWCPlugin", mode="online"),
    ranges={"ewc_lambda": "non_negative"},
    params=("ewc_lambda", "decay_factor", "keep_importance_data"),
    defaults={"ewc_lambda": 100.0, "decay_factor": 1.0},
    select={"ewc_lambda": EWC_GRID},
    provenance="Avalanche EWCPlugin, online mode (Schwarz et al. 2018); ewc_lambda chosen on "
               "the validation stream from the grid; decay_factor fixed at 1.0 (no decay), "
               "not tuned.",
    family="quadratic",
    colour="#98df8a", marker="<",
))
register(MethodEntry(
    "si", "SI", "naive",
    _plugin("alpha_mas_avalanche.plugins.si", "SIPlugin"),
    ranges={"si_lambda": "positive"},
    params=("si_lambda", "damping"),
    defaults={"si_lambda": 1.0, "damping": 0.1},
    select={"si_lambda": [1.0, 10.0, 100.0, 1000.0, 10000.0]},
    provenance="SIPlugin (ours) after Zenke, Poole & Ganguli 2017: unregularised-gradient path "
               "integral, xi = 0.1 (the paper's Split MNIST value), no clipping; c chosen on "
               "the validation stream from the grid.",
    family="quadratic",
    colour="#9467bd", marker="v",
))
register(MethodEntry(
    "si_avalanche", "SI (Avalanche)", "naive",
    _plugin("avalanche.training.plugins", "SynapticIntelligencePlugin"),
    ranges={"si_lambda": "non_negative"},
    params=("si_lambda", "eps", "excluded_parameters", "device"),
    defaults={"si_lambda": 1.0},
    select={"si_lambda": [1.0, 100.0]},
    provenance="Avalanche 0.6 SynapticIntelligencePlugin run as it ships. On CPU it has no "
               "effect: extract_weights (avalanche/training/plugins/synaptic_intelligence.py, "
               "line 215) stores param.detach().cpu().flatten(), a view of the live weights "
               "on a CPU tensor, so the path integral is g * 0 and the penalty 0; it also "
               "clips importances at 0.001 and damps with 1e-7. See docs/harness.md.",
    family="quadratic",
    colour="#c5b0d5", marker=">",
))
register(MethodEntry(
    "l2", "L2", "naive",
    _plugin("alpha_mas_avalanche.plugins.l2", "L2Plugin"),
    ranges={"lambda_reg": "positive"},
    params=("lambda_reg",),
    defaults={"lambda_reg": 0.01},
    select={"lambda_reg": [1e-3, 1e-2, 0.1, 1.0, 10.0]},
    provenance="L2Plugin: the quadratic with unit importance around the last task's "
               "parameters (the importance-free control; Hsu et al. 2018's L2); lambda "
               "chosen on the validation stream from the grid.",
    family="quadratic",
    colour="#8c564b", marker="8",
))
register(MethodEntry(
    "lwf", "LwF", "naive",
    _plugin("avalanche.training.plugins", "LwFPlugin"),
    ranges={"alpha": "non_negative"},
    params=("alpha", "temperature"),
    defaults={"alpha": 1.0, "temperature": 2.0},
    select={"alpha": [0.1, 1.0, 10.0, 100.0]},
    provenance="Avalanche LwFPlugin; temperature 2 from Li & Hoiem 2017 (LwF); distillation "
               "weight alpha chosen on the validation stream from the grid.",
    colour="#e377c2", marker="P",
))
register(MethodEntry(
    "naive", "Naive (fine-tuning)", "naive", _none,
    roles=("deciding",),
    params=(),
    provenance="no hyperparameters (lower bound).",
    family="bound",
    colour="0.55", marker="X", linestyle=":",
))
register(MethodEntry(
    "joint", "Joint (upper bound)", "joint", _none,
    params=(),
    provenance="Avalanche JointTraining on all tasks at once, same epochs; no hyperparameters.",
    family="bound",
    colour="0.15", marker="*", linestyle="--",
))
register(MethodEntry(
    "ebll", "EBLL", "naive",
    _plugin("alpha_mas_avalanche.plugins.ebll", "EBLLPlugin"),
    params=("code_size", "code_weight", "reconstruction_weight", "temperature",
            "distillation_weight", "autoencoder_epochs", "autoencoder_lr",
            "autoencoder_batch_size", "feature_extractor"),
    provenance="EBLLPlugin (Rannen et al. 2017) with its constructor defaults; pass params "
               "or a select grid in the config to change them.",
    module="alpha_mas_avalanche.plugins.ebll",
    colour="#bcbd22", marker="x",
))
register(MethodEntry(
    "imm", "IMM", "naive",
    _plugin("alpha_mas_avalanche.plugins.imm", "IMMPlugin"),
    params=("mode", "merge_weights", "weight_transfer", "l2_transfer", "drop_transfer",
            "fisher_estimate", "max_fisher_samples", "fisher_batch_size"),
    provenance="IMMPlugin (Lee et al. 2017) with its constructor defaults; pass params or a "
               "select grid in the config to change them.",
    module="alpha_mas_avalanche.plugins.imm",
    after_training="merged",
    colour="#17becf", marker="+",
))

#: the rows of ``--figures paper`` (:mod:`.paper_figures`), one per slot, the first present of
#: each slot's alternatives: AlphaMAS (the write-up's λ = N where no tuned row exists), the
#: per-task ablation, MAS, EWC, SI (ours: Avalanche's has no effect on CPU), LwF, Naive, Joint
PAPER_METHODS = (("alpha_mas", "alpha_mas_writeup"), ("alpha_mas_per_task",), ("mas",), ("ewc",),
                 ("si",), ("lwf",), ("naive",), ("joint",))
#: the methods of the paper's accuracy matrix: AlphaMAS, its ablation, MAS and Naive
MATRIX_METHODS = ("alpha_mas", "alpha_mas_writeup", "alpha_mas_per_task", "mas", "naive")

__all__ = ["MethodEntry", "REGISTRY", "ROLES", "register", "build_method", "get_entry",
           "available_methods", "is_available", "method_label", "accepted_params", "FAMILIES",
           "FAMILY_TITLES", "family_of", "with_defaults", "with_role", "baseline_method",
           "trains_once", "check_method_name", "check_param_names", "check_exclusive",
           "PAPER_METHODS", "MATRIX_METHODS"]
