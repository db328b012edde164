"""EBLLPlugin and IMMPlugin beside Avalanche 0.6's strategies and plugins: the rows of
docs/compatibility.md that apply to them, one short real run on scikit-learn digits each.

EBLL: its code and distillation losses are 0 throughout the first experience and positive
later, finite, and one encoder is kept per experience. IMM (mean-IMM with L2-transfer):
after the last experience the shared trunk holds the plain average of the stored
solutions (a hand computation), the L2-transfer penalty is positive after the first
experience, and everything is finite.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models import IncrementalClassifier
from avalanche.training import JointTraining, Naive, OnlineNaive
from avalanche.training.plugins import EarlyStoppingPlugin, LRSchedulerPlugin
from torch import nn

from alpha_mas_avalanche import EBLLPlugin, IMMPlugin
from compatibility_helpers import (
    HIDDEN, N_EXPERIENCES, PLUGINS, STRATEGIES, ClassILMLP, Recorder, benchmark,
    frozen_first_layer_build, make, quiet_evaluator, seed_all, train,
)
from digits import MultiHeadMLP

METHODS = ("EBLL", "IMM")

pytestmark = pytest.mark.slow  # the compatibility matrix: real Avalanche training per row


def new_plugin(method: str):
    if method == "EBLL":
        plugin = EBLLPlugin(code_size=8, autoencoder_epochs=2, autoencoder_batch_size=64)
        return plugin, Recorder(plugin, lambda p: p.last_code_loss + p.last_distillation_loss)
    plugin = IMMPlugin(mode="mean", l2_transfer=1e-2)
    return plugin, Recorder(plugin, lambda p: p.last_l2_penalty)


def check(method, strategy, plugin, recorder, experiences=N_EXPERIENCES):
    exps = sorted(recorder.penalties)
    assert len(exps) == experiences, exps
    for exp in exps:
        assert all(np.isfinite(recorder.penalties[exp])), exp
    for exp in exps[1:]:
        assert max(recorder.penalties[exp]) > 0, (exp, recorder.penalties[exp])
    assert all(np.isfinite(recorder.losses))
    for name, p in strategy.model.named_parameters():
        assert bool(torch.isfinite(p).all()), name
    if method == "EBLL":
        assert all(v == 0.0 for v in recorder.penalties[exps[0]])
        assert len(plugin.encoders) == experiences
        return
    assert len(plugin.solutions) == experiences
    params = dict(strategy.model.named_parameters())
    trunk = [n for n in plugin.solutions[-1] if n.startswith("trunk.")]
    assert trunk
    for name in trunk:
        average = torch.stack([s[name] for s in plugin.solutions]).mean(0)
        torch.testing.assert_close(params[name].detach(), average, rtol=1e-5, atol=1e-6,
                                   msg=name)


def run(method, build, experiences=N_EXPERIENCES):
    seed_all(0)
    plugin, recorder = new_plugin(method)
    strategy, train_fn = build(plugin, recorder)
    train_fn(strategy)
    check(method, strategy, plugin, recorder, experiences)
    return strategy, plugin, recorder


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("method", METHODS)
def test_strategy(method, name):
    """The plugin in each strategy's plugin list (class-incremental digits, one head)."""
    if name == "GEM":
        pytest.importorskip("quadprog", reason="GEM needs the quadprog solver: pip install '.[gem]'")
    cls, kwargs = STRATEGIES[name]
    bm = benchmark()

    def build(plugin, recorder):
        strategy = make(cls, ClassILMLP(), [plugin, recorder], criterion=nn.CrossEntropyLoss(),
                        **kwargs)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_online_naive_on_an_online_stream(method):
    bm = benchmark(n_train=250)
    online = list(split_online_stream(bm.train_stream[:1], experience_size=16, seed=0))[:3]

    def build(plugin, recorder):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            strategy = make(OnlineNaive, ClassILMLP(), [plugin, recorder], train_mb_size=8,
                            criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, online)

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_joint_training_is_one_experience(method):
    """JointTraining ends one experience: nothing earlier to distil or merge with, so
    EBLL keeps one encoder and IMM one solution (the trained parameters themselves)."""
    bm = benchmark()
    seed_all(0)
    plugin, recorder = new_plugin(method)
    model = ClassILMLP()
    strategy = make(JointTraining, model, [plugin, recorder], criterion=nn.CrossEntropyLoss())
    strategy.train(bm.train_stream[:N_EXPERIENCES], eval_streams=[])
    assert all(np.isfinite(recorder.losses))
    if method == "EBLL":
        assert len(plugin.encoders) == 1 and plugin.last_distillation_loss == 0.0
    else:
        assert len(plugin.solutions) == 1
        for name, p in model.named_parameters():
            assert torch.equal(p.detach(), plugin.solutions[0][name]), name


@pytest.mark.parametrize("name", sorted(PLUGINS))
@pytest.mark.parametrize("method", METHODS)
def test_plugin_beside(method, name):
    """Naive with another plugin listed before it (task-IL, multi-head)."""
    if name == "GEMPlugin":
        pytest.importorskip("quadprog", reason="GEM needs the quadprog solver: pip install '.[gem]'")
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        strategy = make(Naive, MultiHeadMLP(hidden=HIDDEN), [PLUGINS[name](), plugin, recorder])
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_plugin(method):
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        stopper = EarlyStoppingPlugin(patience=1, val_stream_name="test_stream",
                                      metric_name="Top1_Acc_Stream")
        strategy = make(Naive, MultiHeadMLP(hidden=HIDDEN), [plugin, stopper, recorder],
                        train_epochs=6, eval_every=1, lr=0.2,
                        evaluator=quiet_evaluator(accuracy_metrics(stream=True)))
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES],
                                         eval_streams=lambda e: [bm.test_stream[e.current_experience]])

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Metric Top1_Acc_Stream used by the EarlyStopping")
        _, _, recorder = run(method, build)
    assert min(recorder.epochs.values()) < 6, recorder.epochs


@pytest.mark.parametrize("method", METHODS)
def test_lr_scheduler_plugin(method):
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        model = MultiHeadMLP(hidden=HIDDEN)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))
        strategy = make(Naive, model, [plugin, scheduler, recorder], optimizer=optimizer,
                        train_epochs=2)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    _, _, recorder = run(method, build)
    assert sorted(set(recorder.lrs)) == pytest.approx([0.05, 0.1])


@pytest.mark.parametrize("peval_mode", ["epoch", "iteration"])
@pytest.mark.parametrize("method", METHODS)
def test_periodic_evaluation(method, peval_mode):
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        strategy = make(Naive, MultiHeadMLP(hidden=HIDDEN), [plugin, recorder], eval_every=1,
                        peval_mode=peval_mode,
                        evaluator=quiet_evaluator(accuracy_metrics(stream=True)))
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES],
                                         eval_streams=lambda e: [bm.test_stream[:e.current_experience + 1]])

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_online_stream(method):
    bm = benchmark(n_train=250)
    online = list(split_online_stream(bm.train_stream[:2], experience_size=16, seed=0))
    online = [online[0], online[1], online[-1]]

    def build(plugin, recorder):
        strategy = make(Naive, ClassILMLP(), [plugin, recorder], train_mb_size=8,
                        criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, online)

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_class_incremental_with_incremental_classifier(method):
    bm = benchmark()

    def build(plugin, recorder):
        model = ClassILMLP(classifier=IncrementalClassifier(HIDDEN, 2))
        strategy = make(Naive, model, [plugin, recorder], criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    strategy, _, _ = run(method, build)
    assert strategy.model.classifier.classifier.out_features >= 2 * N_EXPERIENCES


@pytest.mark.parametrize("method", METHODS)
def test_task_incremental_with_multi_head_classifier(method):
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        strategy = make(Naive, MultiHeadMLP(hidden=HIDDEN), [plugin, recorder])
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    run(method, build)


@pytest.mark.parametrize("method", METHODS)
def test_model_with_frozen_layers(method):
    bm = benchmark(task_il=True)
    seed_all(0)
    start = MultiHeadMLP(hidden=HIDDEN)

    strategy, _, _ = run(method, frozen_first_layer_build(start, bm.train_stream[:N_EXPERIENCES]))
    assert torch.equal(strategy.model.trunk[0].weight, start.trunk[0].weight)


@pytest.mark.parametrize("method", METHODS)
def test_float64_model_and_data(method):
    bm = benchmark(dtype=torch.float64)

    def build(plugin, recorder):
        strategy = make(Naive, ClassILMLP().double(), [plugin, recorder],
                        criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    strategy, _, _ = run(method, build)
    assert all(p.dtype == torch.float64 for p in strategy.model.parameters())
