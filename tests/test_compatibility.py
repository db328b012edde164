"""AlphaMASPlugin beside Avalanche 0.6's strategies and plugins: the compatibility matrix
of docs/compatibility.md, one short real run on scikit-learn digits per row.

Each row trains 3 experiences with the analytic and with the autograd penalty gradient
from the same seeds, and checks: the penalty is 0 throughout the first experience and
positive later, nothing is NaN, and both modes end with the same parameters to float
tolerance (where a row says otherwise, its test checks what holds instead).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models import IncrementalClassifier
from avalanche.training import MER, ICaRL, JointTraining, Naive, OnlineNaive, StreamingLDA
from avalanche.training.plugins import EarlyStoppingPlugin, LRSchedulerPlugin
from torch import nn

from alpha_mas_avalanche import AlphaMASPlugin, mas_importance
from compatibility_helpers import (
    HIDDEN, N_EXPERIENCES, ON, PLUGINS, STRATEGIES, ClassILMLP, Recorder, benchmark,
    frozen_first_layer_build, make, params_of, quiet_evaluator, seed_all, train,
)
from digits import MultiHeadMLP

MODES = ("analytic", "autograd")

pytestmark = pytest.mark.slow  # the compatibility matrix: real Avalanche training per row


# ------------------------------------------------------------------ the rows
@pytest.fixture(autouse=True)
def _strategies_on_the_test_device(device, monkeypatch):
    monkeypatch.setitem(ON, "device", device)


def run_row(build, mode, **plugin_kwargs):
    """``build(plugin, recorder) -> (strategy, run)``; ``run(strategy)`` trains, and may
    return the ``(strategy, plugin, recorder)`` that stand for the row (a resumed run)."""
    seed_all(0)
    plugin = AlphaMASPlugin(lambda_reg=5.0, penalty_gradient=mode, **plugin_kwargs)
    recorder = Recorder(plugin)
    strategy, run = build(plugin, recorder)
    return run(strategy) or (strategy, plugin, recorder)


def check_row(build, *, experiences=N_EXPERIENCES, compare=True, rtol=1e-4, atol=1e-5,
              **plugin_kwargs):
    """The three checks of every row; returns the outcomes by mode."""
    outcomes = {mode: run_row(build, mode, **plugin_kwargs) for mode in MODES}
    for mode, (strategy, plugin, recorder) in outcomes.items():
        exps = sorted(recorder.penalties)
        assert len(exps) == experiences, (mode, exps)
        assert all(p == 0.0 for p in recorder.penalties[exps[0]]), mode
        for exp in exps[1:]:
            values = recorder.penalties[exp]
            assert max(values) > 0, (mode, exp, values)
            assert all(np.isfinite(values)), (mode, exp)
        assert all(np.isfinite(recorder.losses)), mode
        assert len(plugin.alphas) == experiences, mode
        for name, p in strategy.model.named_parameters():
            assert bool(torch.isfinite(p).all()), (mode, name)
    if compare:
        a = params_of(outcomes["analytic"][0].model)
        b = params_of(outcomes["autograd"][0].model)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)
        pa = outcomes["analytic"][2].penalties
        pb = outcomes["autograd"][2].penalties
        for exp in pa:
            assert pa[exp] == pytest.approx(pb[exp], rel=1e-3, abs=1e-7), exp
    return outcomes


def moved(outcomes, start) -> float:
    """How far training moved the trunk (so a comparison is not between untrained models)."""
    model = outcomes["analytic"][0].model
    return max(float((p.detach() - start[n]).abs().max())
               for n, p in model.named_parameters() if n in start)


# ------------------------------------------------------------------- strategies
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy(name):
    """AlphaMASPlugin in each strategy's plugin list (class-incremental digits, one head)."""
    if name == "GEM":
        pytest.importorskip("quadprog", reason="GEM needs the quadprog solver: pip install '.[gem]'")
    cls, kwargs = STRATEGIES[name]
    bm = benchmark()
    seed_all(0)
    start = ClassILMLP()

    def build(plugin, recorder):
        model = ClassILMLP()
        model.load_state_dict(start.state_dict())
        strategy = make(cls, model, [plugin, recorder], criterion=nn.CrossEntropyLoss(), **kwargs)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    assert moved(outcomes, params_of(start)) > 1e-2


def test_online_naive_on_an_online_stream():
    """The deprecated OnlineNaive on split_online_stream: every online experience (32
    samples) is consolidated as a task."""
    bm = benchmark(n_train=250)
    online = list(split_online_stream(bm.train_stream[:1], experience_size=16, seed=0))[:3]

    def build(plugin, recorder):
        seed_all(0)
        model = ClassILMLP()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            strategy = make(OnlineNaive, model, [plugin, recorder], train_mb_size=8,
                            criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, online)

    check_row(build)


@pytest.mark.parametrize("task_il", [False, True], ids=["class_il", "task_il"])
def test_joint_training_consolidates_once_and_never_penalises(task_il):
    """JointTraining trains once on the concatenated stream: one experience ends, so one
    task is consolidated and the penalty is never active (nothing earlier to protect).
    Its ``strategy.experience`` is the first experience of the stream, so the importance
    is that experience's (its data, its head on a multi-head model)."""
    bm = benchmark(task_il=task_il)
    outcomes = {}
    for mode in MODES:
        seed_all(0)
        plugin = AlphaMASPlugin(lambda_reg=5.0, penalty_gradient=mode)
        recorder = Recorder(plugin)
        model = MultiHeadMLP(hidden=HIDDEN) if task_il else ClassILMLP()
        strategy = make(JointTraining, model, [plugin, recorder], criterion=nn.CrossEntropyLoss())
        seed_all(1)
        strategy.train(bm.train_stream[:N_EXPERIENCES], eval_streams=[])
        assert len(plugin.alphas) == 1
        assert all(p == 0.0 for ps in recorder.penalties.values() for p in ps)
        assert all(np.isfinite(recorder.losses))
        reference = mas_importance(model, bm.train_stream[0].dataset.eval(),
                                   task_label=0 if task_il else None)
        total = sum(float(o.double().sum()) for o in reference.values())
        assert plugin.importance_totals[0] == pytest.approx(total, rel=1e-5)
        outcomes[mode] = params_of(model)
    for name in outcomes["analytic"]:
        torch.testing.assert_close(outcomes["analytic"][name], outcomes["autograd"][name])


def test_icarl_importance_is_zero_so_every_experience_is_skipped_with_a_warning():
    """iCaRL's eval-mode output is its nearest-mean classifier, computed without gradients:
    MAS importance 0. With evaluation during training (which gives the classifier its
    classes), each experience is skipped with one warning naming it, and training goes
    on without a penalty. Without it, the classifier has no class means when the first
    experience ends and its forward fails: a named error."""
    bm = benchmark()

    def icarl(plugins, **kwargs):
        seed_all(0)
        trunk, head = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU()), nn.Linear(HIDDEN, 10)
        params = list(trunk.parameters()) + list(head.parameters())
        return ICaRL(feature_extractor=trunk, classifier=head,
                     optimizer=torch.optim.SGD(params, lr=0.05), memory_size=40,
                     buffer_transform=None, fixed_memory=True, train_mb_size=32,
                     plugins=plugins, evaluator=quiet_evaluator(), **kwargs)

    plugin = AlphaMASPlugin(lambda_reg=5.0)
    recorder = Recorder(plugin)
    strategy = icarl([plugin, recorder], eval_every=1)
    with pytest.warns(UserWarning, match=r"experience \d: the importance is 0") as caught:
        train(strategy, bm.train_stream[:N_EXPERIENCES],
              eval_streams=lambda e: [bm.test_stream[e.current_experience]])
    skipped = [str(w.message) for w in caught if "the importance is 0" in str(w.message)]
    assert [m.split(":")[0] for m in skipped] == [
        f"AlphaMASPlugin, experience {e}" for e in range(N_EXPERIENCES)]
    assert plugin.alphas == [] and plugin.penalty.num_tasks == 0
    assert all(p == 0.0 for ps in recorder.penalties.values() for p in ps)
    assert all(np.isfinite(recorder.losses))

    with pytest.raises(RuntimeError, match=r"experience 0: the model's eval-mode forward "
                                           r"failed .*no class means available"):
        train(icarl([AlphaMASPlugin()]), bm.train_stream[:1])


def test_streaming_lda_has_no_backward_so_the_penalty_is_not_applied_and_says_so():
    """StreamingLDA fits a closed-form head on a frozen feature extractor (no optimizer, no
    backward): the importance of the extractor's features is consolidated, the penalty is
    never applied, one warning says so."""
    bm = benchmark()
    seed_all(0)
    features = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU())
    start = params_of(features)
    plugin = AlphaMASPlugin(lambda_reg=5.0)
    strategy = StreamingLDA(slda_model=features, criterion=nn.CrossEntropyLoss(),
                            input_size=HIDDEN, num_classes=10, train_mb_size=32,
                            eval_mb_size=32, plugins=[plugin], evaluator=quiet_evaluator())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(strategy, bm.train_stream[:N_EXPERIENCES])
    messages = [str(w.message) for w in caught if "AlphaMASPlugin" in str(w.message)]
    assert len(messages) == 1 and "StreamingLDA" in messages[0], messages
    assert len(plugin.alphas) == N_EXPERIENCES and plugin.last_penalty == 0.0
    assert all(np.isfinite(plugin.importance_totals))
    for name, p in features.named_parameters():
        assert torch.equal(p, start[name]), name  # nothing trains them


def test_mer_calls_no_backward_hook_so_the_penalty_is_not_applied_and_says_so():
    """MER makes its own inner updates without the backward hooks: the penalty cannot be
    applied. One warning, at the end of the first experience; the importance is still
    consolidated and finite."""
    bm = benchmark(n_train=250)
    seed_all(0)
    model = ClassILMLP()
    plugin = AlphaMASPlugin(lambda_reg=5.0)
    strategy = MER(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                   mem_size=20, batch_size_mem=4, n_inner_steps=1, train_mb_size=8,
                   plugins=[plugin], evaluator=quiet_evaluator())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(strategy, bm.train_stream[:2])
    messages = [str(w.message) for w in caught if "before_backward" in str(w.message)]
    assert len(messages) == 1 and "experience 0" in messages[0] and "MER" in messages[0]
    assert len(plugin.alphas) == 2 and plugin.last_penalty == 0.0
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


# ------------------------------------------------------------- plugins beside it
@pytest.mark.parametrize("order", ["other_first", "alpha_mas_first"])
@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_plugin_beside(name, order):
    """Naive with another plugin, in both orders of the plugin list (task-IL, multi-head)."""
    if name == "GEMPlugin":
        pytest.importorskip("quadprog", reason="GEM needs the quadprog solver: pip install '.[gem]'")
    bm = benchmark(task_il=True)
    seed_all(0)
    start = MultiHeadMLP(hidden=HIDDEN)

    def build(plugin, recorder):
        model = MultiHeadMLP(hidden=HIDDEN)
        model.load_state_dict(start.state_dict())
        other = PLUGINS[name]()
        pair = [other, plugin] if order == "other_first" else [plugin, other]
        strategy = make(Naive, model, pair + [recorder])
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    assert moved(outcomes, params_of(start)) > 1e-2


class EpochTotals(SupervisedPlugin):
    """Reference for importance_from="last_epochs": per experience, the total importance
    averaged over the training batches of the last ``k`` epochs that ran."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.epochs, self.expected = k, [], []

    def before_training_exp(self, strategy, **kwargs):
        self.epochs = []

    def before_training_epoch(self, strategy, **kwargs):
        self.epochs.append([0.0, 0])

    def before_forward(self, strategy, **kwargs):
        if not strategy.is_training:
            return
        omega = mas_importance(strategy.model, strategy.mb_x,
                               task_label=int(strategy.mb_task_id[0]), batch_size=1000)
        n = strategy.mb_x.shape[0]
        self.epochs[-1][0] += n * sum(float(o.double().sum()) for o in omega.values())
        self.epochs[-1][1] += n

    def after_training_exp(self, strategy, **kwargs):
        ran = [e for e in self.epochs if e[1] > 0][-self.k:]  # the last epoch may not start
        self.expected.append(sum(t for t, _ in ran) / sum(c for _, c in ran))


@pytest.mark.parametrize("importance_from", ["after_training", "last_epochs"])
def test_early_stopping_plugin(importance_from):
    """EarlyStoppingPlugin (patience 1 on validation accuracy, evaluated every epoch) ends
    experiences before their 6 epochs; with importance_from="last_epochs" (k=2) the
    importance is the average over the last 2 epochs actually run."""
    bm = benchmark(task_il=True)
    references = []

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        stopper = EarlyStoppingPlugin(patience=1, val_stream_name="test_stream",
                                      metric_name="Top1_Acc_Stream")
        references.append(EpochTotals(k=2))
        strategy = make(Naive, model, [references[-1], plugin, stopper, recorder],
                        train_epochs=6, eval_every=1, lr=0.2,
                        evaluator=quiet_evaluator(accuracy_metrics(stream=True)))
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES],
                                         eval_streams=lambda e: [bm.test_stream[e.current_experience]])

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Metric Top1_Acc_Stream used by the EarlyStopping")
        outcomes = check_row(build, importance_from=importance_from, importance_epochs=2)
    epochs = outcomes["analytic"][2].epochs
    assert min(epochs.values()) < 6 - 2, epochs  # stopped before the last k epochs began
    if importance_from == "last_epochs":
        for (_, plugin, _), reference in zip(outcomes.values(), references):
            assert plugin.importance_totals == pytest.approx(reference.expected, rel=1e-5)


def test_lr_scheduler_plugin():
    """LRSchedulerPlugin (StepLR halving every epoch, 2 epochs per experience)."""
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))
        strategy = make(Naive, model, [plugin, scheduler, recorder], optimizer=optimizer,
                        train_epochs=2)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    assert sorted(set(outcomes["analytic"][2].lrs)) == pytest.approx([0.05, 0.1])


# --------------------------------------------------------------------- setups
@pytest.mark.parametrize("peval_mode", ["epoch", "iteration"])
def test_periodic_evaluation(peval_mode):
    """eval_every=1 inside training (evaluation puts the model in eval mode and back)."""
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        strategy = make(Naive, model, [plugin, recorder], eval_every=1, peval_mode=peval_mode,
                        evaluator=quiet_evaluator(accuracy_metrics(stream=True)))
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES],
                                         eval_streams=lambda e: [bm.test_stream[:e.current_experience + 1]])

    check_row(build)


def test_checkpoint_resume_mid_stream(tmp_path):
    """save_checkpoint after experience 2 of 3, a fresh strategy resumes with
    maybe_load_checkpoint: the same parameters as the uninterrupted run."""
    bm = benchmark(task_il=True)

    def strategy_for(plugin, recorder):
        seed_all(0)
        return make(Naive, MultiHeadMLP(hidden=HIDDEN), [plugin, recorder])

    def interrupted(plugin, recorder):
        def run(strategy):
            train(strategy, bm.train_stream[:2])
            fname = tmp_path / f"{plugin.penalty_gradient}.pkl"
            save_checkpoint(strategy, fname)
            other = AlphaMASPlugin(lambda_reg=5.0, penalty_gradient=plugin.penalty_gradient)
            fresh, next_exp = maybe_load_checkpoint(strategy_for(other, Recorder(other)), fname)
            assert next_exp == 2
            loaded = next(p for p in fresh.plugins if isinstance(p, AlphaMASPlugin))
            resumed = next(p for p in fresh.plugins if isinstance(p, Recorder))
            resumed.watched = loaded
            resumed.penalties = {}  # the loaded recorder holds the first run's records
            train(fresh, bm.train_stream[2:N_EXPERIENCES])
            recorder.penalties.update(resumed.penalties)
            return fresh, loaded, recorder
        return strategy_for(plugin, recorder), run

    def uninterrupted(plugin, recorder):
        return strategy_for(plugin, recorder), lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(interrupted)
    whole, whole_plugin, _ = run_row(uninterrupted, "analytic")
    resumed, resumed_plugin, _ = outcomes["analytic"]
    for (name, a), b in zip(whole.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed_plugin.alphas == pytest.approx(whole_plugin.alphas, rel=1e-5)


def test_online_stream():
    """Naive on split_online_stream (mini-experiences of 16 samples), each consolidated.
    Class-incremental: Avalanche 0.6's online experiences have no task labels, and its
    MultiHeadClassifier fails on them with or without this plugin."""
    bm = benchmark(n_train=250)
    online = list(split_online_stream(bm.train_stream[:2], experience_size=16, seed=0))
    online = [online[0], online[1], online[-1]]  # two of task 0, one of task 1

    def build(plugin, recorder):
        seed_all(0)
        model = ClassILMLP()
        strategy = make(Naive, model, [plugin, recorder], train_mb_size=8,
                        criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, online)

    check_row(build)


def test_class_incremental_with_incremental_classifier():
    """IncrementalClassifier grows its head every experience; the penalty covers the old
    units of a grown layer and none of the new ones."""
    bm = benchmark()

    def build(plugin, recorder):
        seed_all(0)
        model = ClassILMLP(classifier=IncrementalClassifier(HIDDEN, 2))
        strategy = make(Naive, model, [plugin, recorder], criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    model, plugin = outcomes["analytic"][0].model, outcomes["analytic"][1]
    assert model.classifier.classifier.out_features >= 2 * N_EXPERIENCES
    # consolidated after the last experience: the stored weight has the grown head's shape
    stored = plugin.penalty.weight["classifier.classifier.weight"]
    assert stored.shape[0] == model.classifier.classifier.out_features


def test_task_incremental_with_multi_head_classifier():
    """MultiHeadClassifier: one head per task label; old heads are protected."""
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        strategy = make(Naive, model, [plugin, recorder])
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    weight = outcomes["analytic"][1].penalty.weight
    assert float(weight["classifier.classifiers.0.classifier.weight"].sum()) > 0


def test_model_with_frozen_layers():
    """A frozen first layer: not in the penalty, never moves."""
    bm = benchmark(task_il=True)
    seed_all(0)
    start = MultiHeadMLP(hidden=HIDDEN)

    outcomes = check_row(frozen_first_layer_build(start, bm.train_stream[:N_EXPERIENCES]))
    for mode, (strategy, plugin, _) in outcomes.items():
        assert not any(n.startswith("trunk.0.") for n in plugin.penalty.weight), mode
        assert torch.equal(strategy.model.trunk[0].weight, start.trunk[0].weight), mode


def test_float64_model_and_data():
    """A float64 model on float64 inputs: the penalty state is float64, modes agree to 1e-10.
    Single head: Avalanche 0.6's MultiHeadClassifier writes its outputs into a float32
    tensor and fails on float64 with or without this plugin."""
    bm = benchmark(dtype=torch.float64)

    def build(plugin, recorder):
        seed_all(0)
        model = ClassILMLP().double()
        strategy = make(Naive, model, [plugin, recorder], criterion=nn.CrossEntropyLoss())
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build, rtol=1e-10, atol=1e-12)
    assert all(w.dtype == torch.float64 for w in outcomes["analytic"][1].penalty.weight.values())


def test_train_mb_size_one():
    """Mini-batches of one sample (the fast importance path sees batches of one)."""
    bm = benchmark(task_il=True, n_train=120)

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        strategy = make(Naive, model, [plugin, recorder], train_mb_size=1, lr=0.01)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    check_row(build, importance_from="last_epochs")


def test_cuda(cuda_device):
    """Model, data and penalty state on the GPU."""
    bm = benchmark(task_il=True)

    def build(plugin, recorder):
        seed_all(0)
        model = MultiHeadMLP(hidden=HIDDEN)
        strategy = make(Naive, model, [plugin, recorder], device=cuda_device)
        return strategy, lambda s: train(s, bm.train_stream[:N_EXPERIENCES])

    outcomes = check_row(build)
    assert all(w.is_cuda for w in outcomes["analytic"][1].penalty.weight.values())
