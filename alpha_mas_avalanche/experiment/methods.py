"""The method registry: one entry per method, name -> how to build it.

An entry builds ``(strategy, plugins)`` from its hyperparameters and the number of
tasks: ``strategy`` is ``"naive"`` (Avalanche ``Naive`` + the plugins) or ``"joint"``
(Avalanche ``JointTraining``). Adding a method is one :func:`register` call.

Each entry states where its hyperparameters come from (``provenance``): chosen on the
validation stream by the grid in ``select`` (the default grid of the ``--full`` preset),
or fixed with a cited source.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from alpha_mas_avalanche.experiment.names import check_name, listing, suggestion

STRATEGIES = ("naive", "joint")


@dataclass(frozen=True)
class MethodEntry:
    """How to build one method.

    Attributes:
        name: registry key.
        label: display name (tables, figures).
        strategy: ``"naive"`` or ``"joint"``.
        build_plugins: ``(params, n_tasks) -> list of plugins``.
        defaults: hyperparameters used when a config gives none.
        select: default validation grid ``{param: [values]}`` (empty: nothing chosen).
        sweep: default swept parameter ``{param: [values]}``, each value its own row.
        provenance: where the defaults/grid come from.
        module: module that must import for the method to be available (None: always).
        family: the group it is drawn and tabulated with (:data:`FAMILIES`).
        params: the parameter names a config may give (checked before anything heavy is
            imported; ``tests/test_names.py`` holds them against the constructors); None for
            a method registered at run time, checked against its constructor when built.
        exclusive: ``(name, name, why)``: two names that set the same thing; a config gives
            at most one of them (the registry default of the other is then not used).
        ranges: ``{param: "positive" | "non_negative"}``: a config's values are checked
            against these without building a plugin per grid value.
        after_training: what the method does to the model after an experience's training,
            before it is evaluated ("" for nothing; IMM: "merged"): per-epoch curves taken
            during training show the weights before that.
        colour: a matplotlib colour, or a colormap's name: the rows of the entries naming
            it share that map's range in table order (the AlphaMAS family: warm hues);
            related baselines take a dark and a light shade of one hue, the bounds greys.
        marker: its marker in line and dot plots (distinct per entry).
        linestyle: its line style (dotted Naive, dashed Joint).
    """

    name: str
    label: str
    strategy: str
    build_plugins: Callable[[dict[str, Any], int], list]
    defaults: dict[str, Any] = field(default_factory=dict)
    select: dict[str, list] = field(default_factory=dict)
    sweep: dict[str, list] = field(default_factory=dict)
    provenance: str = ""
    module: str | None = None
    family: str = "other"
    after_training: str = ""
    colour: str = ""
    marker: str = "o"
    linestyle: str = "-"
    params: tuple[str, ...] | None = None
    exclusive: tuple[tuple[str, str, str], ...] = ()
    ranges: dict[str, str] = field(default_factory=dict)


#: method families, in display order: AlphaMAS and its ablations, MAS, the other
#: importance-weighted quadratic penalties, the rest, and the bounds (Naive, Joint)
FAMILIES = ("alpha_mas", "mas", "quadratic", "other", "bound")
FAMILY_TITLES = {"alpha_mas": "AlphaMAS", "mas": "MAS", "quadratic": "EWC, SI, L2",
                 "other": "LwF, EBLL, IMM", "bound": "bounds"}

REGISTRY: dict[str, MethodEntry] = {}

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


def check_method_name(where: str, name: object) -> str:
    """``name`` if it is a registered method, else a ValueError naming ``where``."""
    return check_name(where, name, REGISTRY, "a method name, one of")


def check_param_names(method: str, kind: str, names: Iterable[str]) -> None:
    """Every name of ``methods[<method>].<kind>`` is one the entry's ``params`` lists (an
    entry without ``params`` is checked against its constructor when built)."""
    accepted = REGISTRY[method].params
    if accepted is None:
        return
    for key in names:
        if key not in accepted:
            where = f"methods[{method}].{kind}.{key}"
            known = listing(accepted) if accepted else "none (it takes no hyperparameters)"
            raise ValueError(f"{where}: {method} has no parameter {key!r}"
                             f"{suggestion(key, accepted)}; accepted: {known}")


def check_exclusive(method: str, given: Collection[str]) -> None:
    """At most one name of each of the entry's ``exclusive`` pairs among ``given`` (the
    names in a method's params, sweep and select together)."""
    for first, second, why in REGISTRY[method].exclusive:
        if first in given and second in given:
            raise ValueError(f"methods[{method}]: give {first!r} or {second!r}, not both ({why})")


def register(entry: MethodEntry) -> MethodEntry:
    """Add (or replace) a registry entry."""
    if entry.strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {entry.strategy!r}")
    if entry.family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {entry.family!r}")
    REGISTRY[entry.name] = entry
    return entry


def is_available(name: str) -> bool:
    """Registered, and its module (if any) is installed (found without importing it, so
    ``--list-methods`` and the presets need no torch)."""
    entry = REGISTRY.get(name)
    if entry is None:
        return False
    return entry.module is None or _module_found(entry.module)


def _module_found(dotted: str) -> bool:
    """``dotted`` is found on the path (its parent packages are not executed)."""
    if dotted in sys.modules:
        return True
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    for depth in range(1, len(rest) + 1):
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join([top, *rest[:depth]]), list(spec.submodule_search_locations))
    return spec is not None


def family_of(name: str) -> str:
    """The family of registry method ``name`` ("other" for a name not registered)."""
    entry = REGISTRY.get(name)
    return entry.family if entry is not None else "other"


def available_methods() -> list[str]:
    return [name for name in REGISTRY if is_available(name)]


def get_entry(name: str) -> MethodEntry:
    if name not in REGISTRY:
        raise ValueError(f"method: expected one of {sorted(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def build_method(name: str, params: dict[str, Any], n_tasks: int) -> tuple[str, list]:
    """``(strategy kind, plugins)`` for ``name`` with ``params`` over its defaults."""
    entry = get_entry(name)
    if not is_available(name):
        raise ImportError(
            f"method {name!r} needs module {entry.module}, which is not importable "
            "in this installation"
        )
    return entry.strategy, entry.build_plugins(with_defaults(name, params), n_tasks)


def with_defaults(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` over the registry defaults of method ``name``; a default is not used
    where ``params`` gives the other name of an ``exclusive`` pair
    (AlphaMAS's ``lambda_reg`` replaces its default ``lambda_multiplier``)."""
    replaced = set()
    for first, second, _ in (REGISTRY[name].exclusive if name in REGISTRY else ()):
        replaced |= {second} if first in params else {first} if second in params else set()
    defaults = {k: v for k, v in get_entry(name).defaults.items() if k not in replaced}
    return {**defaults, **params}


@dataclass(frozen=True)
class Takes:
    """Where a builder's hyperparameters go: ``module.cls``'s constructor, less the names the
    builder sets itself (``fixed``), plus the names it consumes (``extra``: name -> type).
    ``module=None``: no hyperparameters (beyond ``extra``)."""

    module: str | None = None
    cls: str | None = None
    fixed: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _takes(module: str | None = None, cls: str | None = None, *, fixed: tuple[str, ...] = (),
           extra: dict[str, Any] | None = None) -> Callable:
    """Decorator recording a builder's :class:`Takes` (read by :func:`accepted_params`)."""
    def mark(build: Callable) -> Callable:
        build.takes = Takes(module, cls, fixed, extra or {})
        return build

    return mark


def accepted_params(name: str) -> dict[str, inspect.Parameter] | None:
    """The hyperparameters method ``name`` accepts, read from its plugin constructor's
    signature (imports the plugin); None when its builder does not declare :class:`Takes`
    (then nothing can be checked before the run)."""
    takes: Takes | None = getattr(get_entry(name).build_plugins, "takes", None)
    if takes is None:
        return None
    accepted = {}
    if takes.module is not None:
        constructor = getattr(importlib.import_module(takes.module), takes.cls)
        try:
            signature = inspect.signature(constructor, eval_str=True)
        except NameError:  # an annotation only importable for type checkers
            signature = inspect.signature(constructor)
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        accepted = {n: p for n, p in signature.parameters.items()
                    if p.kind in keyword and n not in takes.fixed}
    for extra, annotation in takes.extra.items():
        accepted[extra] = inspect.Parameter(extra, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
    return accepted


def method_label(name: str, params: dict[str, Any]) -> str:
    """Row label: the method's label plus its swept/non-default hyperparameters."""
    entry = get_entry(name)
    params = with_defaults(name, params)
    if name == "alpha_mas_writeup" and "lambda_multiplier" in params:
        multiplier = _fmt(float(params["lambda_multiplier"]))
        return f"AlphaMAS λ={'' if multiplier == '1' else multiplier}N"
    shown = {k: v for k, v in params.items() if k in entry.sweep}
    if not shown:
        return entry.label
    return entry.label + " (" + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()) + ")"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------- builders
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

__all__ = ["MethodEntry", "REGISTRY", "register", "build_method", "get_entry",
           "available_methods", "is_available", "method_label", "accepted_params", "FAMILIES",
           "FAMILY_TITLES", "family_of", "with_defaults"]
