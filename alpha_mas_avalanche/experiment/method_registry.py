"""The method registry's machinery: :class:`MethodEntry` (how to build a method and what the
reports do with it), :data:`REGISTRY`, :func:`register`, the lookups and the checks of a
config's method names and parameters (no torch: plugins are imported when built). The
entries themselves are registered in :mod:`.methods`."""
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
        roles: what the reports do with it (:data:`ROLES`).
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
    roles: tuple[str, ...] = ()


#: method families, in display order: AlphaMAS and its ablations, MAS, the other
#: importance-weighted quadratic penalties, the rest, and the bounds (Naive, Joint)
FAMILIES = ("alpha_mas", "mas", "quadratic", "other", "bound")
FAMILY_TITLES = {"alpha_mas": "AlphaMAS", "mas": "MAS", "quadratic": "EWC, SI, L2",
                 "other": "LwF, EBLL, IMM", "bound": "bounds"}

#: what a report does with a method: "baseline": every row is compared with it (one entry);
#: "deciding": the comparisons with the baseline that the findings turn on; "writeup_baseline":
#: the reference write-up's own MAS, which its claims are checked against
ROLES = ("baseline", "deciding", "writeup_baseline")

REGISTRY: dict[str, MethodEntry] = {}

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
    for role in entry.roles:
        check_name("roles", role, ROLES)
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


def with_role(role: str) -> list[str]:
    """The registered methods with ``role`` (:data:`ROLES`), in registry order."""
    return [name for name, entry in REGISTRY.items() if role in entry.roles]


def baseline_method() -> str:
    """The method every row of a report is compared with (role "baseline")."""
    return with_role("baseline")[0]


def trains_once(name: str) -> bool:
    """Whether ``name`` trains on all tasks at once (Joint): no sequence, no forgetting."""
    return name in REGISTRY and REGISTRY[name].strategy == "joint"


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
