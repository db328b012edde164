"""Shared pieces of the compatibility-matrix tests (AlphaMAS, EBLL, IMM beside Avalanche's
strategies and plugins): the digits benchmark, a class-incremental MLP, seeding, a quiet
evaluator, a penalty recorder, the strategy factory and the strategies and plugins of the
matrix."""
from __future__ import annotations

import random
import warnings

import numpy as np
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.training import AGEM, EWC, GEM, LwF, Cumulative, Naive, OnlineNaive, Replay
from avalanche.training.plugins import (
    AGEMPlugin, EvaluationPlugin, EWCPlugin, GEMPlugin, LwFPlugin, MASPlugin, ReplayPlugin,
    SynapticIntelligencePlugin,
)
from sklearn.datasets import load_digits
from torch import nn

from digits import CLASS_ORDER

N_EXPERIENCES = 3
HIDDEN = 16


# ------------------------------------------------------------------ data, models
def benchmark(task_il: bool = False, n_train: int = 500, n_test: int = 150, dtype=torch.float32):
    """Digits in 5 experiences of 2 classes (about n_train/5 training samples each)."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=dtype), torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    train = _make_taskaware_tensor_classification_dataset(x[:n_train], y[:n_train])
    test = _make_taskaware_tensor_classification_dataset(x[n_train:n_train + n_test],
                                                         y[n_train:n_train + n_test])
    return nc_benchmark(train, test, n_experiences=5, task_labels=task_il, seed=0,
                        fixed_class_order=CLASS_ORDER, class_ids_from_zero_in_each_exp=task_il)


class ClassILMLP(nn.Module):
    """64 -> hidden -> hidden trunk, one head over all 10 classes (or a given classifier)."""

    def __init__(self, hidden: int = HIDDEN, classifier: nn.Module | None = None):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU())
        self.classifier = classifier if classifier is not None else nn.Linear(hidden, 10)

    def features(self, x):
        return self.trunk(x)

    def forward(self, x):
        return self.classifier(self.trunk(x))


def seed_all(seed: int) -> None:
    """Torch, Python and NumPy RNGs: A-GEM's and GEM's memories use Python's ``random``."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def quiet_evaluator(*metrics):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(*metrics, loggers=[])


class Recorder(SupervisedPlugin):
    """A watched plugin's penalty and the strategy's loss after every training iteration,
    and the number of epochs each experience ran."""

    def __init__(self, watched, value=lambda p: p.last_penalty):
        super().__init__()
        self.watched, self.value = watched, value
        self.penalties: dict[int, list[float]] = {}
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.epochs: dict[int, int] = {}

    def after_training_iteration(self, strategy, **kwargs):
        exp = strategy.experience.current_experience
        self.penalties.setdefault(exp, []).append(float(self.value(self.watched)))
        self.losses.append(float(torch.as_tensor(strategy.loss).detach()))
        if strategy.optimizer is not None:
            self.lrs.append(strategy.optimizer.param_groups[0]["lr"])

    def after_training_epoch(self, strategy, **kwargs):
        exp = strategy.experience.current_experience
        self.epochs[exp] = self.epochs.get(exp, 0) + 1


#: the device ``make`` puts strategies on (a test module sets it to ``pytest --device``)
ON = {"device": "cpu"}


def make(strategy_cls, model, plugins, **kwargs):
    """``strategy_cls`` with SGD, mini-batches of 32, 1 epoch, no loggers, on the test
    device (all overridable)."""
    options = dict(train_mb_size=32, train_epochs=1, device=ON["device"], evaluator=quiet_evaluator())
    options.update(kwargs)
    if strategy_cls is OnlineNaive:
        options.pop("train_epochs")  # it has train_passes
    lr = options.pop("lr", 0.05)
    optimizer = options.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=lr)
    return strategy_cls(model=model, optimizer=optimizer, plugins=plugins, **options)


def train(strategy, experiences, eval_streams=None):
    for exp in experiences:
        seed_all(exp.current_experience)
        strategy.train(exp, eval_streams=[] if eval_streams is None else eval_streams(exp))


def params_of(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def frozen_first_layer_build(start: nn.Module, experiences):
    """``build(plugin, recorder)`` of a Naive strategy on a copy of the multi-head ``start``
    whose first layer is frozen, and the call that trains it on ``experiences``."""
    def build(plugin, recorder):
        model = type(start)(hidden=HIDDEN)
        model.load_state_dict(start.state_dict())
        model.trunk[0].requires_grad_(False)
        strategy = make(Naive, model, [plugin, recorder])
        return strategy, lambda s: train(s, experiences)
    return build


# ------------------------------------------------------------------- strategies
STRATEGIES = {
    "Naive": (Naive, {}),
    "Replay": (Replay, {"mem_size": 60}),
    "Cumulative": (Cumulative, {}),
    "LwF": (LwF, {"alpha": 1.0, "temperature": 2.0}),
    "EWC": (EWC, {"ewc_lambda": 1.0}),
    "AGEM": (AGEM, {"patterns_per_exp": 40, "sample_size": 20}),
    "GEM": (GEM, {"patterns_per_exp": 20, "memory_strength": 0.5}),
}


# ---------------------------------------------------------------- plugins beside it
PLUGINS = {
    "ReplayPlugin": lambda: ReplayPlugin(mem_size=60),
    "LwFPlugin": lambda: LwFPlugin(alpha=1.0, temperature=2.0),
    "EWCPlugin": lambda: EWCPlugin(ewc_lambda=1.0),
    "MASPlugin": lambda: MASPlugin(lambda_reg=1.0),
    "SynapticIntelligencePlugin": lambda: SynapticIntelligencePlugin(si_lambda=1.0),
    "AGEMPlugin": lambda: AGEMPlugin(patterns_per_experience=40, sample_size=20),
    "GEMPlugin": lambda: GEMPlugin(patterns_per_experience=20, memory_strength=0.5),
}
