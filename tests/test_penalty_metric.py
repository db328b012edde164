"""``PenaltyMetric`` beside every plugin with a penalty (AlphaMAS, EBLL's distillation and
code terms, IMM's L2-transfer): no host synchronisation from the package during the
training iterations of a second experience, the metric's own per-iteration hook included,
and each epoch's reported penalty equal to the mean of the values the plugins held after
each iteration (read by the test, outside the package)."""
from __future__ import annotations

import warnings

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

import ddp_worker
from alpha_mas_avalanche import AlphaMASPlugin, EBLLPlugin, IMMPlugin, PenaltyMetric
from sync_counter import CountFrom, SyncCounter


class CountOffAtEpochEnd(SupervisedPlugin):
    """First in the list: counting off before any plugin's (or the evaluator's) epoch end."""

    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def after_training_epoch(self, strategy, **kwargs):
        self.counter.active = False


class PenaltyLog(SupervisedPlugin):
    """Each plugin's penalty after every training iteration, read here (not in the package)."""

    def __init__(self, plugins) -> None:
        super().__init__()
        self.plugins, self.values = plugins, {type(p).__name__: [] for p in plugins}

    def before_training_epoch(self, strategy, **kwargs):
        self.values = {name: [] for name in self.values}

    def after_training_iteration(self, strategy, **kwargs):
        for plugin in self.plugins:
            self.values[type(plugin).__name__].append(plugin.last_penalty_tensor.item())


def test_penalty_metric_sums_on_the_device_and_sees_ebll_and_imm():
    plugins = [AlphaMASPlugin(lambda_reg=1.0), EBLLPlugin(code_size=8, autoencoder_epochs=2),
               IMMPlugin(mode="mean", l2_transfer=1e-2)]
    counter, log, metric = SyncCounter(), PenaltyLog(plugins), PenaltyMetric()
    torch.manual_seed(0)
    model = ddp_worker.Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                         criterion=nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=1,
                         device="cpu", evaluator=EvaluationPlugin(metric, loggers=[]),
                         plugins=[CountOffAtEpochEnd(counter), CountFrom(counter, 1),
                                  *plugins, log])
    counter.start()
    try:
        for experience in ddp_worker.experiences():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                strategy.train(experience, eval_streams=[])
    finally:
        counter.stop()
    assert counter.total == 0, dict(counter.counts)
    result = metric.result()
    for name, values in log.values.items():
        assert len(values) == ddp_worker.SAMPLES // 16 and max(values) > 0, name
        mean = sum(values) / len(values)
        assert result[f"{name}/penalty_epoch"] == pytest.approx(mean, rel=1e-6), name
