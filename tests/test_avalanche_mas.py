"""The harness's "MAS (Avalanche)": Avalanche's MASPlugin without its truth test of the loss."""
from __future__ import annotations

import copy

import pytest
import torch
from avalanche.training import Naive
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import MASPlugin

from alpha_mas_avalanche.plugins.avalanche_mas import AvalancheMASPlugin
from digits import MultiHeadMLP, digits_benchmark


def _train(plugin_class, model, bm):
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                     train_mb_size=64, train_epochs=2, device="cpu",
                     plugins=[plugin_class(lambda_reg=10.0)])
    for experience in bm.train_stream[:2]:
        strategy.train(experience)
    return model


def test_same_updates_as_avalanches_plugin_where_it_runs():
    bm = digits_benchmark()
    torch.manual_seed(0)
    start = MultiHeadMLP()
    RNGManager.set_random_seeds(0)  # the loaders draw from Python's, NumPy's and torch's RNGs
    ours = _train(AvalancheMASPlugin, copy.deepcopy(start), bm)
    RNGManager.set_random_seeds(0)
    theirs = _train(MASPlugin, copy.deepcopy(start), bm)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a, b), name


def test_a_loss_of_exactly_zero_is_trained_on_not_refused():
    bm = digits_benchmark()
    strategies = {}
    for cls in (MASPlugin, AvalancheMASPlugin):
        torch.manual_seed(0)
        model = MultiHeadMLP()
        strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                         train_mb_size=64, train_epochs=1, device="cpu", plugins=[cls(lambda_reg=1.0)])
        strategy.train(bm.train_stream[0])
        strategies[cls] = strategy
    # a second experience whose every mini-batch loss is exactly 0
    for strategy in strategies.values():
        strategy._criterion = lambda out, y: (out * 0.0).sum()
    with pytest.raises(ValueError, match="Loss is not available"):
        strategies[MASPlugin].train(bm.train_stream[1])
    strategies[AvalancheMASPlugin].train(bm.train_stream[1])  # trains on the penalty alone
