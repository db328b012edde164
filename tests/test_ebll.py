"""EBLLPlugin and the EBLL math against hand computations and real data (digits)."""
from __future__ import annotations

import math

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import SimpleMLP
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from alpha_mas_avalanche import EBLLPlugin
from alpha_mas_avalanche.autoencoder import FeatureAutoencoder, code_loss, train_autoencoder
from digits import digits_benchmark
from forgetting_helpers import (checkpointed_and_uninterrupted, make_strategy, mean_first_task_forgetting,
                                task_accuracy)


class LossRecorder(SupervisedPlugin):
    def __init__(self, plugin: EBLLPlugin):
        super().__init__()
        self.plugin = plugin
        self.code: dict[int, list[float]] = {}
        self.distillation: dict[int, list[float]] = {}

    def after_training_iteration(self, strategy, **kwargs):
        exp = strategy.experience.current_experience
        self.code.setdefault(exp, []).append(self.plugin.last_code_loss)
        self.distillation.setdefault(exp, []).append(self.plugin.last_distillation_loss)


def test_code_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    encoders = [nn.Linear(6, 3).double(), nn.Linear(6, 2).double()]
    f, f_star = torch.randn(4, 6).double(), torch.randn(4, 6).double()
    expected = 0.0
    for encoder in encoders:
        w, b = encoder.weight.detach().tolist(), encoder.bias.detach().tolist()
        for n in range(4):
            for j in range(len(b)):
                z = sum(w[j][i] * f[n, i].item() for i in range(6)) + b[j]
                z_star = sum(w[j][i] * f_star[n, i].item() for i in range(6)) + b[j]
                s, s_star = 1 / (1 + math.exp(-z)), 1 / (1 + math.exp(-z_star))
                expected += 0.5 * (s - s_star) ** 2 / 4
    assert code_loss(encoders, f, f_star).item() == pytest.approx(expected, rel=1e-9)


def test_code_loss_is_zero_at_the_anchor_and_positive_once_the_features_move():
    bm = digits_benchmark(seed=0)
    plugin = EBLLPlugin(code_size=16)
    recorder = LossRecorder(plugin)
    strategy = make_strategy([plugin, recorder], epochs=2)
    strategy.train(bm.train_stream[0])
    assert len(plugin.encoders) == 1 and recorder.code[0] == [0.0] * len(recorder.code[0])
    strategy.train(bm.train_stream[1])
    code, distillation = recorder.code[1], recorder.distillation[1]
    # first step: F == F*, old heads unchanged (KL of identical distributions, up to rounding)
    assert code[0] == 0.0 and distillation[0] == pytest.approx(0.0, abs=1e-6)
    assert min(code[1:]) > 0 and min(distillation[1:]) > 0  # F moved away from F*
    assert len(plugin.encoders) == 2


@pytest.mark.slow
def test_autoencoder_reconstructs_digit_features_better_than_the_mean():
    bm = digits_benchmark(seed=0)
    strategy = make_strategy([], epochs=4)
    strategy.train(bm.train_stream[0])
    model = strategy.model.eval()

    def features_and_labels(dataset):
        x = torch.stack([dataset[i][0] for i in range(len(dataset))])
        y = torch.tensor([dataset[i][1] for i in range(len(dataset))])
        with torch.no_grad():
            return model.features(x), y

    train_f, train_y = features_and_labels(bm.train_stream[0].dataset)
    test_f, test_y = features_and_labels(bm.test_stream[0].dataset)
    defaults = EBLLPlugin(code_size=16)
    torch.manual_seed(0)
    autoencoder = FeatureAutoencoder(train_f.shape[1], defaults.code_size)
    history = train_autoencoder(
        autoencoder,
        lambda: zip(train_f.split(defaults.autoencoder_batch_size), train_y.split(defaults.autoencoder_batch_size)),
        lambda r: model.classifier(r, 0),
        reconstruction_weight=defaults.reconstruction_weight,
        epochs=100,
        lr=defaults.autoencoder_lr,
    )
    assert history[-1] < history[0]
    with torch.no_grad():
        reconstruction = autoencoder(test_f)
        error = (reconstruction - test_f).pow(2).sum(1).mean()
        mean_error = (train_f.mean(0) - test_f).pow(2).sum(1).mean()
        accuracy = (model.classifier(reconstruction, 0).argmax(1) == test_y).float().mean()
    assert error < 0.5 * mean_error, (error, mean_error)
    assert accuracy > 0.9


@pytest.mark.slow
def test_ebll_forgets_the_first_task_less_than_naive_on_digits(naive_forgetting):
    # A digits task has 280 samples (2 batches): 50 autoencoder epochs = 100 Adam steps.
    # Measured (seeds 0-7): naive 0.155-0.393 per seed, EBLL 0.013-0.085; over windows of
    # 3 seeds naive 0.23-0.30, EBLL 0.04-0.06.
    forgetting = mean_first_task_forgetting(lambda: [EBLLPlugin(code_size=16, autoencoder_epochs=50)])
    assert forgetting < naive_forgetting - 0.1, (forgetting, naive_forgetting)


def test_class_incremental_single_head_distils_the_old_classes():
    bm = digits_benchmark(seed=0)
    torch.manual_seed(0)
    model = SimpleMLP(num_classes=10, input_size=64, hidden_size=32, drop_rate=0)
    plugin = EBLLPlugin(code_size=8, feature_extractor=lambda m, x: m.features(x))
    recorder = LossRecorder(plugin)
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=32,
                     train_epochs=1, plugins=[plugin, recorder], evaluator=EvaluationPlugin(loggers=[]))
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    assert plugin.old_classes == {None: {0, 1}}  # digits relabels each pair to (0, 1)
    assert max(recorder.distillation[1]) > 0 and max(recorder.code[1]) > 0


def test_a_model_without_the_contract_gets_a_clear_error():
    bm = digits_benchmark(seed=0)
    model = nn.Sequential(nn.Linear(64, 2))
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=32,
                     train_epochs=1, plugins=[EBLLPlugin(code_size=8)],
                     evaluator=EvaluationPlugin(loggers=[]))
    with pytest.raises(TypeError, match=r"features\(x\).*feature_extractor.*classifier"):
        strategy.train(bm.train_stream[0])


def test_code_size_must_be_undercomplete():
    bm = digits_benchmark(seed=0)
    strategy = make_strategy([EBLLPlugin(code_size=64)], epochs=1)
    with pytest.raises(ValueError, match="code_size.*64 features"):
        strategy.train(bm.train_stream[0])


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    _, resumed = checkpointed_and_uninterrupted(
        lambda: EBLLPlugin(code_size=16, autoencoder_epochs=2), tmp_path, n_experiences=3)
    plugin = next(p for p in resumed.plugins if isinstance(p, EBLLPlugin))
    assert len(plugin.encoders) == 3


def test_state_dict_round_trip():
    bm = digits_benchmark(seed=0)
    plugin = EBLLPlugin(code_size=16, autoencoder_epochs=1)
    strategy = make_strategy([plugin], epochs=1)
    strategy.train(bm.train_stream[0])
    copy = EBLLPlugin(code_size=16)
    copy.load_state_dict(plugin.state_dict())
    features = torch.randn(10, 64)
    torch.testing.assert_close(copy.encoders[0](features), plugin.encoders[0](features))
    assert copy.old_classes == plugin.old_classes


def test_runs_on_cuda(cuda_device):
    bm = digits_benchmark(seed=0)
    plugin = EBLLPlugin(code_size=16, autoencoder_epochs=2)
    strategy = make_strategy([plugin], epochs=1, device=cuda_device)
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    assert plugin.encoders[1].weight.is_cuda
    assert task_accuracy(strategy, bm, 0) > 0.8


@pytest.mark.parametrize("kwargs, name", [
    ({"code_size": 0}, "code_size"),
    ({"code_size": 10.0}, "code_size"),
    ({"code_weight": -1.0}, "code_weight"),
    ({"code_weight": float("nan")}, "code_weight"),
    ({"reconstruction_weight": float("inf")}, "reconstruction_weight"),
    ({"temperature": 0.0}, "temperature"),
    ({"distillation_weight": -0.5}, "distillation_weight"),
    ({"autoencoder_epochs": 0}, "autoencoder_epochs"),
    ({"autoencoder_lr": 0.0}, "autoencoder_lr"),
    ({"autoencoder_batch_size": True}, "autoencoder_batch_size"),
    ({"feature_extractor": "features"}, "feature_extractor"),
])
def test_bad_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EBLLPlugin(**kwargs)
