"""Argument checks shared by the public API: each error names the parameter and
the accepted values. Nothing is clamped."""
from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def check_positive_int(name: str, value: Any, *, extra: str = "") -> int:
    """An ``int`` (not bool) >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        more = f" {extra}" if extra else ""
        raise ValueError(f"{name}: expected an int >= 1{more}, got {value!r}")
    return value


def check_non_negative_int(name: str, value: Any) -> int:
    """An ``int`` (not bool) >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return value


def check_finite_float(
    name: str, value: Any, *, positive: bool = False, non_negative: bool = False
) -> float:
    """A finite real number; optionally > 0 or >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(
            f"{name}: expected a finite real number, got an int too large for a float "
            f"({value.bit_length()} bits)"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    if non_negative and value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return value


def check_probability(name: str, value: Any, *, allow_one: bool = False) -> float:
    """A float in [0, 1) (or [0, 1] with ``allow_one``)."""
    value = check_finite_float(name, value)
    upper_ok = value <= 1 if allow_one else value < 1
    if value < 0 or not upper_ok:
        bound = "]" if allow_one else ")"
        raise ValueError(f"{name}: expected a number in [0, 1{bound}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One of ``choices`` (compared by type and value, so ``1`` is not ``True``)."""
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return value
    accepted = ", ".join(sorted(map(repr, choices)))
    raise ValueError(f"{name}: expected one of {accepted}, got {value!r}")
