"""The names a config may use, without torch or Avalanche: methods, their parameters, and
the near-miss suggestion every name error carries.

:data:`METHOD_PARAMS` mirrors the method registry (:mod:`.methods`) and the plugin
constructors behind it, one line per method; ``tests/test_names.py`` checks it against both,
so a method added to the registry without its line here (or a constructor that gains a
parameter) fails that test. Config errors are raised from this table before anything
heavy is imported, so they answer in well under a second.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

#: AlphaMASPlugin's constructor arguments
_ALPHA_MAS = ("lambda_reg", "lambda_mode", "alpha_scaling", "exact_importance", "importance_data",
              "max_importance_samples", "importance_batch_size", "importance_from",
              "importance_epochs", "penalty_gradient", "anchor")


def _without(names: tuple[str, ...], *dropped: str) -> tuple[str, ...]:
    return tuple(n for n in names if n not in dropped)


#: registry method -> the parameter names its config entry accepts
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "alpha_mas": _ALPHA_MAS + ("lambda_multiplier",),
    "alpha_mas_writeup": _ALPHA_MAS + ("lambda_multiplier",),
    "alpha_mas_last_epochs": _ALPHA_MAS + ("lambda_multiplier",),
    "alpha_mas_per_task": _without(_ALPHA_MAS, "lambda_mode"),
    "mas": _without(_ALPHA_MAS, "alpha_scaling"),
    "mas_reference": _without(_ALPHA_MAS, "alpha_scaling", "anchor", "lambda_mode"),
    "avalanche_mas": ("lambda_reg", "alpha", "verbose"),
    "ewc": ("ewc_lambda", "decay_factor", "keep_importance_data"),
    "online_ewc": ("ewc_lambda", "decay_factor", "keep_importance_data"),
    "si": ("si_lambda", "damping"),
    "si_avalanche": ("si_lambda", "eps", "excluded_parameters", "device"),
    "l2": ("lambda_reg",),
    "lwf": ("alpha", "temperature"),
    "naive": (),
    "joint": (),
    "ebll": ("code_size", "code_weight", "reconstruction_weight", "temperature",
             "distillation_weight", "autoencoder_epochs", "autoencoder_lr",
             "autoencoder_batch_size", "feature_extractor"),
    "imm": ("mode", "merge_weights", "weight_transfer", "l2_transfer", "drop_transfer",
            "fisher_estimate", "max_fisher_samples", "fisher_batch_size"),
}

_LAMBDA = ("lambda_reg", "lambda_multiplier",
           "both set the strength: lambda_reg is lambda itself, lambda_multiplier is lambda / N "
           "(N = the number of tasks)")
#: method -> (name, name, why): two names that set the same thing; a config gives at most
#: one of them (the registry default of the other is then not used)
EXCLUSIVE_PARAMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "alpha_mas": (_LAMBDA,),
    "alpha_mas_writeup": (_LAMBDA,),
    "alpha_mas_last_epochs": (_LAMBDA,),
}


def suggestion(value: object, accepted: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest accepted name, or ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(accepted), n=1, cutoff=0.6)
    if not close:
        lowered = {name.lower().replace("-", "_"): name for name in accepted}
        key = value.lower().replace("-", "_")
        close = [lowered[key]] if key in lowered else [
            name for name in accepted if key and (key in name or name in key)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def listing(names: Collection[str]) -> str:
    """``'a', 'b', 'c'``: names quoted once, sorted, comma-separated."""
    return ", ".join(repr(n) for n in sorted(names))


def check_name(where: str, value: object, accepted: Collection[str], what: str = "one of") -> str:
    """``value`` if it is in ``accepted``, else a ValueError naming ``where``, the accepted
    names and the closest one."""
    if isinstance(value, str) and value in accepted:
        return value
    raise ValueError(f"{where}: expected {what} {listing(accepted)}, got {value!r}"
                     f"{suggestion(value, accepted)}")


def check_keys(where: str, data: dict, accepted: Collection[str]) -> None:
    """Every key of mapping ``data`` is in ``accepted``, else a ValueError naming ``where``,
    the unknown key, the closest accepted one and all of them."""
    for key in data:
        if key not in accepted:
            raise ValueError(f"{where}: unknown key {key!r}{suggestion(key, accepted)}; "
                             f"accepted keys: {listing(accepted)}")


def check_method_name(where: str, name: object, registered: Collection[str] = ()) -> str:
    """A method name of the static table, or of ``registered`` (the registry, which may hold
    methods added at run time with ``register``)."""
    return check_name(where, name, {*METHOD_PARAMS, *registered}, "a method name, one of")


def check_param_names(method: str, kind: str, names: Iterable[str]) -> None:
    """Every name of ``methods[<method>].<kind>`` is a parameter the method accepts (a method
    registered at run time, not in the table, is checked against its constructor later)."""
    if method not in METHOD_PARAMS:
        return
    accepted = METHOD_PARAMS[method]
    for key in names:
        if key not in accepted:
            where = f"methods[{method}].{kind}.{key}"
            known = listing(accepted) if accepted else "none (it takes no hyperparameters)"
            raise ValueError(f"{where}: {method} has no parameter {key!r}"
                             f"{suggestion(key, accepted)}; accepted: {known}")


def check_exclusive(method: str, given: Collection[str]) -> None:
    """At most one name of each :data:`EXCLUSIVE_PARAMS` pair among ``given`` (the names in
    a method's params, sweep and select together)."""
    for first, second, why in EXCLUSIVE_PARAMS.get(method, ()):
        if first in given and second in given:
            raise ValueError(f"methods[{method}]: give {first!r} or {second!r}, not both ({why})")
