"""Choosing hyperparameters on the validation stream: each method's grid, its extension
when the best value sits at an edge, and the guard against grids that had no effect.

A method's grid starts as its ``select`` mapping. When the best value of a numeric,
positive parameter is the grid's smallest or largest, the grid grows by one decade in that
direction (``value / 10`` or ``value * 10``) and the choice is made again, at most
``config.grid_extensions`` times per side. A choice still at an edge after that (or whose
extension runs have not finished) is reported as ``at_grid_edge``. A grid whose values all
give the same mean validation accuracy is ``no_effect``: the method did not respond to its
hyperparameter, and nothing was chosen. Short of that, ``grid_effect_p`` (a two-way
analysis of variance over the grid's values, selection seeds as blocks) says whether the
validation scores told the values apart at all: a large p means the choice is the best of
noise.

A method with ``refine`` (one positive numeric parameter) then gets a finer look, once: when
its decade grid has settled, the decade choice x 10^(-2/3), 10^(-1/3), 10^(1/3) and 10^(2/3)
(four significant digits) join the grid, and the best of all values is chosen. A decade grid
is a decade grid still: ``at_grid_edge`` says whether the choice lies at or beyond its
smallest or largest decade value.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from scipy.stats import f as f_distribution

from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.specs import RunSpec, base_spec, combinations

Grids = dict[str, dict[str, list]]


def initial_grids(config: ExperimentConfig) -> Grids:
    """``{method: {param: values}}`` from the config's ``select`` grids."""
    return {m.name: {k: list(v) for k, v in m.select.items()} for m in config.methods if m.select}


def selection_seeds(config: ExperimentConfig, name: str | None = None) -> list[int]:
    """The seeds of method ``name``'s validation-grid runs: its own ``selection_seeds``,
    else the experiment's, else its first seed."""
    method = next((m for m in config.methods if m.name == name), None)
    return (method is not None and method.selection_seeds) or config.selection_seeds \
        or config.seeds[:1]


def selection_specs(config: ExperimentConfig, grids: Grids | None = None) -> list[RunSpec]:
    """Validation-grid runs: each grid combination x selection seed, first task order."""
    grids = initial_grids(config) if grids is None else grids
    specs = []
    for method in config.methods:
        if method.name not in grids:
            continue
        order = (method.task_orders or config.task_orders)[0]
        first_sweep = {k: v[0] for k, v in method.sweep.items()}
        for combo in combinations(grids[method.name]):
            for seed in selection_seeds(config, method.name):
                specs.append(base_spec(
                    config, seed, order, method=method.name,
                    params={**method.params, **first_sweep, **combo},
                    eval_stream="valid", phase="select",
                ))
    return specs


def _method_specs(config: ExperimentConfig, name: str, grids: Grids) -> list[RunSpec]:
    return [s for s in selection_specs(config, {name: grids[name]}) if s.method == name]


def _seed_scores(config: ExperimentConfig, name: str, grid: dict[str, list],
                 records: dict[str, dict]) -> dict[str, list[float | None]] | None:
    """Final validation accuracy per grid combination, one per selection seed in seed order
    (None for a diverged run); None when a run is missing."""
    per_combo: dict[str, list[float | None]] = {}
    for spec in _method_specs(config, name, {name: grid}):
        record = records.get(spec.run_id)
        if record is None:
            return None
        key = json.dumps({k: spec.params[k] for k in grid}, sort_keys=True)
        per_combo.setdefault(key, []).append(None if record.get("diverged") else record["final_avg_acc"])
    return per_combo


def _scores(config: ExperimentConfig, name: str, grid: dict[str, list],
            records: dict[str, dict]) -> dict[str, float | None] | None:
    """Mean final validation accuracy per grid combination (None: a run is missing); a
    combination with a diverged run (``diverged`` in its record) scores None."""
    per_combo = _seed_scores(config, name, grid, records)
    return None if per_combo is None else _means(per_combo)


def _means(per_combo: dict[str, list[float | None]]) -> dict[str, float | None]:
    return {key: None if None in v else float(np.mean(v)) for key, v in per_combo.items()}


def grid_effect_p(per_combo: dict[str, list[float | None]]) -> float | None:
    """The p-value of "every grid value gives the same validation accuracy": a two-way
    analysis of variance without interaction (grid values x selection seeds, the seeds as
    blocks, as the same seed shares its data split and initialisation across values). None
    where it cannot be had: fewer than two values or seeds, or a diverged run. Scores that
    differ by value with no noise at all give 0; identical scores give 1."""
    columns = list(per_combo.values())
    if len(columns) < 2 or len(columns[0]) < 2 or any(None in c for c in columns):
        return None
    table = np.asarray(columns, dtype=np.float64)  # values x seeds
    (k, n), centred = table.shape, table - table.mean()
    ss_values = n * np.sum(centred.mean(axis=1) ** 2)
    ss_residual = np.sum(centred ** 2) - ss_values - k * np.sum(centred.mean(axis=0) ** 2)
    negligible = 1e-12 * np.sum(table ** 2)  # float rounding of sums of squares
    if ss_values <= negligible:
        return 1.0
    if ss_residual <= negligible:
        return 0.0
    f = (ss_values / (k - 1)) / (ss_residual / ((k - 1) * (n - 1)))
    return float(f_distribution.sf(f, k - 1, (k - 1) * (n - 1)))


def _best(scores: dict[str, float | None]) -> dict[str, Any]:
    """The highest score, a diverged combination (None) last; a tie goes to the combination
    listed later in the grid (``scores`` is in grid order, and grids stay sorted as they
    grow: the stronger value for the registry's increasing strength grids)."""
    position = {key: i for i, key in enumerate(scores)}
    return json.loads(max(scores, key=lambda key: (scores[key] is not None,
                                                    scores[key] or 0.0, position[key])))


def _extensible(values: list) -> bool:
    return len(values) >= 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in values)


#: the refinement's steps around the decade choice, in thirds of a decade
REFINE_STEPS = (-2, -1, 1, 2)


def _is_decade(value: float, base: list) -> bool:
    """``value`` is a whole number of decades from the initial grid's smallest value."""
    steps = math.log10(value / min(base))
    return abs(steps - round(steps)) < 1e-6


def decade_values(values: list, base: list) -> list:
    """The values of a grid that are not refinement values."""
    return [v for v in values if _is_decade(v, base)] if _extensible(base) else list(values)


def _refined(grid: dict[str, list], chosen: dict[str, Any]) -> dict[str, list]:
    """``grid`` with the refinement around its choice (one parameter)."""
    (key, values), = grid.items()
    finer = {float(f"{chosen[key] * 10 ** (step / 3):.4g}") for step in REFINE_STEPS}
    return {key: sorted(set(values) | finer)}


def _refines(config: ExperimentConfig, name: str) -> bool:
    return any(m.name == name and m.refine for m in config.methods)


def _grown(grid: dict[str, list], chosen: dict[str, Any], base: dict[str, list],
           bound: int) -> dict[str, list]:
    """``grid`` with one decade added at each edge the choice sits on, within ``bound``."""
    grown = {k: list(v) for k, v in grid.items()}
    for key, values in grid.items():
        if not _extensible(values):
            continue
        low_added = sum(v < min(base[key]) for v in values)
        high_added = sum(v > max(base[key]) for v in values)
        if chosen[key] == max(values) and high_added < bound:
            grown[key] = values + [float(max(values)) * 10]
        elif chosen[key] == min(values) and low_added < bound:
            grown[key] = [float(min(values)) / 10] + values
    return grown


def settle_grids(config: ExperimentConfig, grids: Grids, records: dict[str, dict],
                 *, finished_only: bool = False) -> Grids:
    """One round of extension: every method whose grid is complete in ``records``, whose
    choice is at an edge and which responded to its grid grows by a decade. With
    ``finished_only`` a method grows only if the grown grid's runs are all in ``records``
    (reporting on a grid without running anything)."""
    base = initial_grids(config)
    settled = {}
    for name, grid in grids.items():
        scores = _scores(config, name, grid, records)
        settled[name] = grid
        if scores is None or _no_effect(scores):
            continue
        refined = any(decade_values(v, base[name][k]) != v for k, v in grid.items())
        if refined:
            continue
        grown = _grown(grid, _best(scores), base[name], config.grid_extensions)
        if grown == grid and _refines(config, name):
            grown = _refined(grid, _best(scores))
        if grown != grid and (not finished_only or _scores(config, name, grown, records) is not None):
            settled[name] = grown
    return settled


def final_grids(config: ExperimentConfig, records: dict[str, dict]) -> Grids:
    """The grids after every extension whose runs are in ``records``."""
    grids = initial_grids(config)
    while (grown := settle_grids(config, grids, records, finished_only=True)) != grids:
        grids = grown
    return grids


def _no_effect(scores: dict[str, float | None]) -> bool:
    trained = [v for v in scores.values() if v is not None]
    return len(trained) > 1 and len(trained) == len(scores) and max(trained) == min(trained)


def _at_edge(grid: dict[str, list], chosen: dict[str, Any], base: dict[str, list]) -> bool:
    """The choice lies at or beyond an edge of the decade grid of a numeric parameter."""
    edges = {k: decade_values(v, base[k]) for k, v in grid.items() if _extensible(v)}
    return any(not min(d) < chosen[k] < max(d) for k, d in edges.items())


def choose_hyperparameters(config: ExperimentConfig, records: dict[str, dict],
                           grids: Grids | None = None) -> dict[str, dict]:
    """Per selected method with a complete grid: the combination with the best mean final
    validation accuracy, with ``valid_acc`` per combination, the final ``grid``,
    ``at_grid_edge``, ``no_effect`` and ``grid_effect_p`` (methods with a missing validation
    run are left out: nothing is chosen on part of a grid)."""
    grids = final_grids(config, records) if grids is None else grids
    base = initial_grids(config)
    chosen = {}
    for name, grid in grids.items():
        per_seed = _seed_scores(config, name, grid, records)
        if per_seed is None:
            continue
        scores = _means(per_seed)
        best = _best(scores)
        chosen[name] = {"chosen": best, "valid_acc": scores, "grid": grid,
                        "at_grid_edge": _at_edge(grid, best, base[name]),
                        "no_effect": _no_effect(scores),
                        "grid_effect_p": grid_effect_p(per_seed)}
    return chosen
