"""Checking a name against the accepted ones, without torch or Avalanche: the error names
the parameter, the accepted values and the closest one (the method registry,
:mod:`.methods`, holds the methods' parameter names and checks them with these)."""
from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable


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
