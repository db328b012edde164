"""The committed result folders follow the tuned protocol: every config running tuned
AlphaMAS gives MAS and both AlphaMAS modes validation grids over at least three decades,
refined, 10 seeds on the MNIST family; every selection made under it is refined and off
its grid's edges. Reads the committed files only (no runs)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from alpha_mas_avalanche.experiment.config import ExperimentConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"
DECIDING = ("mas", "alpha_mas", "alpha_mas_per_task")
CONFIGS = sorted(RESULTS.glob("*/config.yaml"))
TUNED = [path for path in CONFIGS
         if "alpha_mas" in [m.name for m in ExperimentConfig.load(path).methods]]


def _decades(values: list[float]) -> float:
    return math.log10(max(values) / min(values))


def test_every_folder_running_alpha_mas_is_found() -> None:
    """Guards the parametrisation below: the fair-comparison folders are among them."""
    names = {path.parent.name for path in TUNED}
    assert {"permuted_mnist", "rotated_mnist", "split_mnist", "class_il_split_mnist",
            "split_cifar10_jpeg"} <= names


@pytest.mark.parametrize("path", TUNED, ids=lambda p: p.parent.name)
def test_deciding_methods_are_tuned_alike(path: Path) -> None:
    config = ExperimentConfig.load(path)
    methods = {m.name: m for m in config.methods}
    for name in DECIDING:
        method = methods[name]
        grid = method.select.get("lambda_reg")
        assert grid, f"{path.parent.name}: {name} has no lambda_reg validation grid"
        assert _decades(grid) >= 3, f"{path.parent.name}: {name}'s grid spans < 3 decades"
        assert method.refine, f"{path.parent.name}: {name} is not refined"
        seeds = method.seeds if method.seeds is not None else config.seeds
        wanted = 5 if config.benchmark.startswith("split_cifar10") else 10
        assert len(seeds) >= wanted, f"{path.parent.name}: {name} has {len(seeds)} seeds"
    grids = {tuple(methods[name].select["lambda_reg"]) for name in DECIDING}
    assert len(grids) == 1, f"{path.parent.name}: the deciding methods' grids differ"


def _tuned_selections() -> list[tuple[str, str, dict]]:
    """The deciding methods' choices in every folder whose report holds their final runs
    (final runs wait for a complete validation grid; a grid still running is left out)."""
    found = []
    for path in TUNED:
        selection = json.loads((path.parent / "selection.json").read_text())
        reported = set(pd.read_csv(path.parent / "runs.csv", usecols=["method"]).method)
        if reported >= set(DECIDING):
            found += [(path.parent.name, name, selection[name]) for name in DECIDING]
    return found


def test_every_finished_mnist_family_folder_is_checked() -> None:
    checked = {folder for folder, _, _ in _tuned_selections()}
    assert {p.parent.name for p in TUNED if not p.parent.name.startswith("split_cifar10")} <= checked


@pytest.mark.parametrize("folder,name,entry", _tuned_selections(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_tuned_selections_are_refined_and_off_the_edge(folder: str, name: str, entry: dict) -> None:
    grid = entry["grid"]["lambda_reg"]
    chosen = entry["chosen"]["lambda_reg"]
    assert _decades(grid) >= 3
    assert not entry["at_grid_edge"] and not entry["no_effect"]
    thirds = [v for v in grid if abs(math.log10(v) * 3 - round(math.log10(v) * 3)) < 1e-3
              and abs(math.log10(v) - round(math.log10(v))) > 0.1]
    assert thirds, f"{folder}: {name}'s grid has no refinement"
    nearest = min(abs(math.log10(v / chosen)) for v in thirds)
    assert nearest <= 2 / 3 + 1e-3, f"{folder}: {name}'s refinement is not around its choice"
    assert set(entry["valid_acc"]) == {json.dumps({"lambda_reg": v}) for v in grid}
