"""Row order and display labels of methods and tasks."""
from __future__ import annotations

from typing import Any

from alpha_mas_avalanche.data.names import CIFAR10_CLASS_NAMES, LONG_STREAMS, pair_classes
from alpha_mas_avalanche.experiment.methods import REGISTRY, family_of


#: how a hyperparameter is written in a row label
SYMBOLS = {"lambda_reg": "λ", "ewc_lambda": "λ", "si_lambda": "λ", "alpha": "α"}
#: why a method's grid can show no effect, where the cause is known (see its registry provenance)
NO_EFFECT_CAUSES = {"si_avalanche": "a known Avalanche 0.6 bug on CPU: its weight snapshots "
                                    "alias the live weights, so its penalty is 0"}


def table_order(runs: list[dict]) -> list[str]:
    """Labels in table order: the AlphaMAS rows, the other methods, then the bounds (Naive,
    Joint); run order within each group."""
    method = {r["label"]: r["method"] for r in runs}
    labels = list(dict.fromkeys(r["label"] for r in runs))
    group = {lb: 0 if family_of(method[lb]) == "alpha_mas" else 2 if family_of(method[lb]) == "bound" else 1 for lb in labels}
    return sorted(labels, key=lambda lb: group[lb])


def task_name(benchmark: str, pair: int) -> str:
    """A task named by what sets it apart: its classes, ``(1,2)`` for MNIST/digits,
    ``bird/automobile`` for CIFAR-10; on the long streams (every task holds all ten digits)
    its permutation, ``perm. 4`` for task 3 of permuted MNIST, or its rotation angle,
    ``27°`` for task 3 of 20-task rotated MNIST (task ``k`` turns by ``k * 180 / n``)."""
    if benchmark in LONG_STREAMS and benchmark.startswith("rotated"):
        return f"{pair * 180 / LONG_STREAMS[benchmark]:g}°"
    if benchmark in LONG_STREAMS:
        return f"perm. {pair + 1}"
    first, second = pair_classes(benchmark, pair)
    if benchmark.startswith("split_cifar10"):
        return f"{CIFAR10_CLASS_NAMES[first]}/{CIFAR10_CLASS_NAMES[second]}"
    return f"({first},{second})"


def _short(value: Any) -> str:
    """``1e4`` rather than ``10000.0``; ``0.1``, ``1``, ``2.5`` as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}"


#: above it, validation did not tell a grid's values apart (a diagnostic, not adjusted)
GRID_EFFECT_LEVEL = 0.05


def within_noise(selection: dict) -> str:
    """``"; within noise, grid p 0.25"`` where the validation scores did not tell the grid's
    values apart (``grid_effect_p`` at or above :data:`GRID_EFFECT_LEVEL`), else ``""``."""
    p = selection.get("grid_effect_p")
    return "" if p is None or p < GRID_EFFECT_LEVEL else f"; within noise, grid p {p:.2f}"


def _assignments(params: dict[str, Any]) -> str:
    return ", ".join(f"{SYMBOLS.get(k, k)}={_short(v)}" for k, v in params.items())


def display_label(label: str, method: str, params: dict[str, Any], selection: dict | None) -> str:
    """The row label with the hyperparameter behind it: ``EWC (λ=1e4 chosen)``,
    ``EWC (λ=1e7 chosen, at grid edge)``, ``SI (λ=1 used; no effect: ...)``, ``MAS (λ=1,
    default)`` when a grid exists but was not run (``fixed`` when the config set a value
    other than the registry's); AlphaMAS rows name their λ already."""
    entry = REGISTRY.get(method)
    if selection is not None:
        used = _assignments(selection["chosen"])
        if selection.get("no_effect", False):
            cause = f" — {NO_EFFECT_CAUSES[method]}" if method in NO_EFFECT_CAUSES else ""
            return _annotate(label, f"{used} used; no effect: every grid value gave the same "
                                    f"validation score{cause}")
        edge = ", at grid edge" if selection.get("at_grid_edge", False) else ""
        return _annotate(label, f"{used} chosen{edge}{within_noise(selection)}")
    if entry is None:
        return label
    keys = list(entry.select)
    values = {k: params.get(k, entry.defaults.get(k)) for k in keys if k in params or k in entry.defaults}
    if not values:
        return label
    how = "default" if all(v == entry.defaults.get(k) for k, v in values.items()) else "fixed"
    return _annotate(label, f"{_assignments(values)}, {how}")


def _annotate(label: str, note: str) -> str:
    """``EWC`` -> ``EWC (note)``; ``MAS (Avalanche)`` -> ``MAS (Avalanche; note)``."""
    return f"{label[:-1]}; {note})" if label.endswith(")") else f"{label} ({note})"


def sci(value: float) -> str:
    """Three significant digits, exponent without padding: ``5.82e4``."""
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text
