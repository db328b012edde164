"""``compare-baselines --quick``: strengths chosen on validation where the registry's defaults
barely act on digits, a short run all the same, and a table that says why SI (Avalanche)
does nothing on CPU."""
from __future__ import annotations

from alpha_mas_avalanche.experiment.methods import REGISTRY
from alpha_mas_avalanche.experiment.presets import quick
from alpha_mas_avalanche.experiment.report import display_label
from alpha_mas_avalanche.experiment.selection import selection_specs


def test_every_quadratic_regulariser_is_chosen_on_validation_from_a_small_fixed_grid():
    config = quick()
    methods = {m.name: m for m in config.methods}
    tuned = {name for name, m in methods.items() if m.select}
    assert tuned == {"alpha_mas", "alpha_mas_per_task", "mas", "avalanche_mas", "ewc", "online_ewc",
                     "si", "si_avalanche"}
    for name in tuned:
        (key, grid), = methods[name].select.items()
        assert key in REGISTRY[name].select and len(grid) >= 2 and not methods[name].refine, name
        # the registry default lies below the grid: the quick run no longer shows defaults that barely act
        assert REGISTRY[name].defaults[key] <= min(grid), name
    assert config.grid_extensions == 0 and config.selection_seeds is None  # one seed, no growth
    assert len(selection_specs(config)) == 23  # validation runs (one seed) beside 38 final runs


def test_si_avalanche_without_effect_says_it_is_avalanches_bug():
    selection = {"chosen": {"si_lambda": 100.0}, "no_effect": True}
    assert display_label("SI (Avalanche)", "si_avalanche", {"si_lambda": 100.0}, selection) == (
        "SI (Avalanche; λ=100 used; no effect: every grid value gave the same validation score — "
        "a known Avalanche 0.6 bug on CPU: its weight snapshots alias the live weights, so its "
        "penalty is 0)")
    assert display_label("SI", "si", {"si_lambda": 1.0}, {**selection, "chosen": {"si_lambda": 1.0}}) == (
        "SI (λ=1 used; no effect: every grid value gave the same validation score)")
