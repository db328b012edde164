"""The fast per-sample paths (alpha_mas_avalanche.per_sample) against a slow per-sample
autograd loop in float64, which path each parameter takes, and the analytic penalty
gradient against autograd in real Avalanche training."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_model_adaptation
from avalanche.training import Naive
from torch import nn

from alpha_mas_avalanche import AlphaMASPlugin, ConsolidatedPenalty, mas_importance
from alpha_mas_avalanche import per_sample
from alpha_mas_avalanche.importance import _importance
from digits import MultiHeadMLP, digits_benchmark


def slow_reference(model, x, task_label=None):
    """1/M sum_k |d ||F(x_k)||^2 / d theta|: one sample at a time, plain autograd."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(x.shape[0]):
        out = model(x[k : k + 1]) if task_label is None else model(x[k : k + 1], task_label)
        grads = torch.autograd.grad(out.pow(2).sum(), list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads):
            if g is not None:
                total[n] += g.abs()
    return {n: t / x.shape[0] for n, t in total.items()}


@pytest.fixture
def generic_names(monkeypatch):
    """Names of the parameters that went through the generic torch.func path."""
    names: set[str] = set()
    real = per_sample.generic_batch_sums

    def recording(model, params, *args, **kwargs):
        names.update(params)
        return real(model, params, *args, **kwargs)

    monkeypatch.setattr(per_sample, "generic_batch_sums", recording)
    return names


def check(model, x, *, generic, generic_names, task_label=None, batch_size=7):
    """Fast path == slow reference (float64); exactly ``generic`` took the generic path."""
    model = model.double()
    x = x.double()
    got = mas_importance(model, x, task_label=task_label, batch_size=batch_size)
    want = slow_reference(model, x, task_label)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-12, msg=name)
    assert generic_names == set(generic)
    return got


def test_linear_with_and_without_bias(generic_names):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6, bias=False),
                          nn.ReLU(inplace=True), nn.Linear(6, 3))
    check(model, torch.randn(23, 5), generic=[], generic_names=generic_names)


@pytest.mark.parametrize("conv", [
    dict(in_channels=4, out_channels=6, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(2, 0),
         dilation=(1, 2)),
    dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding="same", bias=False),
    dict(in_channels=4, out_channels=8, kernel_size=1, groups=4, padding="valid"),
])
def test_conv2d_stride_padding_dilation_groups(conv, generic_names):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(**conv), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(11, 4, 7, 7)
    model(x)  # materialise the lazy layer
    check(model, x, generic=[], generic_names=generic_names, batch_size=4)


def test_batchnorm_affine_parameters_in_eval_mode(generic_names):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with torch.no_grad():  # non-trivial running statistics
        model(torch.randn(50, 2, 6, 6) * 3 + 1)
    check(model, torch.randn(17, 2, 6, 6), generic=[], generic_names=generic_names)


def test_layers_without_a_fast_rule_take_the_exact_generic_path(generic_names):
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(4)
            self.seq = nn.Linear(4, 4)  # on 3-D input: generic
            self.head = nn.Linear(4, 2)
            self.scale = nn.Parameter(torch.tensor(1.5))  # a direct parameter

        def forward(self, tokens):
            h = self.seq(self.norm(self.embed(tokens))).tanh().mean(1)
            return self.head(h) * self.scale

    tokens = torch.randint(0, 10, (13, 5))
    model = Net().double()
    got = mas_importance(model, tokens, batch_size=6)
    want = slow_reference(model, tokens)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-12, msg=name)
    assert generic_names == {"embed.weight", "norm.weight", "norm.bias", "seq.weight", "seq.bias",
                             "scale"}


def test_shared_and_reused_weights_take_the_generic_path(generic_names):
    torch.manual_seed(4)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.twice = nn.Linear(4, 4)  # called twice per forward
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight  # tied between two modules
            self.c = nn.Linear(4, 3)  # its weight is also used outside the module

        def forward(self, x):
            h = self.twice(self.twice(x).tanh()).tanh()
            h = self.b(self.a(h).tanh()).tanh()
            return self.c(h) + h @ self.c.weight.t()

    # a layer with one parameter used elsewhere goes generic whole (c.bias too); a.bias,
    # owned by a alone, stays fast
    check(Net(), torch.randn(9, 4), generic_names=generic_names, batch_size=4,
          generic=["twice.weight", "twice.bias", "a.weight", "c.weight", "c.bias"])


def test_padding_modes_without_a_rule_and_frozen_parameters(generic_names):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 5 * 5, 4), nn.ReLU(), nn.Linear(4, 2))
    model[3].weight.requires_grad_(False)
    model[5].bias.requires_grad_(False)
    got = check(model, torch.randn(8, 2, 5, 5), generic_names=generic_names,
                generic=["0.weight", "0.bias"])
    assert set(got) == {"0.weight", "0.bias", "3.bias", "5.weight"}


def test_batch_statistics_mix_samples_so_everything_goes_generic(generic_names):
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, track_running_stats=False),
                          nn.ReLU(), nn.Flatten(), nn.Linear(3 * 3 * 3, 2))
    check(model, torch.randn(10, 2, 5, 5), generic_names=generic_names,
          generic=["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"])


def test_avalanche_multi_head_model_with_masked_heads(generic_names):
    """In-place ReLU and Avalanche's in-place head masking after the hooked layers."""
    torch.manual_seed(7)
    bm = digits_benchmark()
    model = MultiHeadMLP(hidden=12)
    model.trunk[1].inplace = True
    for exp in bm.train_stream:
        avalanche_model_adaptation(model, exp)
    x = torch.rand(15, 64)
    got = check(model, x, task_label=3, generic=[], generic_names=generic_names)
    for name, omega in got.items():
        if "classifiers." in name:
            assert (torch.count_nonzero(omega) > 0) == (".classifiers.3." in name), name


class _Scaled(nn.Module):
    """A custom parametrization: the weight times a learned scalar."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.3))

    def forward(self, w):
        return w * self.scale


@pytest.mark.parametrize("kind", ["hook_weight_norm", "parametrizations_weight_norm", "custom"])
def test_weight_norm_and_parametrized_layers_take_the_generic_path(kind, generic_names):
    """A layer whose parameters are not exactly its own weight / bias (weight_norm's
    weight_g / weight_v, a parametrize-d weight) is summed exactly by the generic path;
    the fast Linear/Conv2d rules would give those parameters 0."""
    torch.manual_seed(11)
    linear, conv = nn.Linear(20, 16), nn.Conv2d(2, 3, 3)
    if kind == "hook_weight_norm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated, still shipped
            linear, conv = nn.utils.weight_norm(linear), nn.utils.weight_norm(conv)
        own = ("weight_g", "weight_v", "bias")
    elif kind == "parametrizations_weight_norm":
        linear = nn.utils.parametrizations.weight_norm(linear)
        conv = nn.utils.parametrizations.weight_norm(conv)
        own = ("bias", "parametrizations.weight.original0", "parametrizations.weight.original1")
    else:
        nn.utils.parametrize.register_parametrization(linear, "weight", _Scaled())
        nn.utils.parametrize.register_parametrization(conv, "weight", _Scaled())
        own = ("bias", "parametrizations.weight.original", "parametrizations.weight.0.scale")
    model = nn.Sequential(nn.Unflatten(1, (2, 4, 4)), conv, nn.Tanh(), nn.Flatten(),
                          nn.Linear(12, 20), linear, nn.Tanh(), nn.Linear(16, 3))
    expected = [f"{i}.{name}" for i in (1, 5) for name in own]
    got = check(model, torch.randn(13, 32), generic=expected, generic_names=generic_names)
    for name in expected:
        assert float(got[name].sum()) > 0, name


def test_fast_equals_generic_path_in_float32():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    with torch.no_grad():
        model(torch.randn(40, 3, 8, 8))
    x = torch.randn(30, 3, 8, 8)
    kwargs = dict(task_label=None, batch_size=16, max_samples=None, device=None)
    fast = _importance(model, x, method="fast", **kwargs)
    generic = _importance(model, x, method="generic", **kwargs)
    for name in generic:
        torch.testing.assert_close(fast[name], generic[name], rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------- penalty gradient
def test_add_gradient_equals_autograd_of_value():
    torch.manual_seed(9)
    shapes = {"a": (5, 3), "b": (3,), "c": (2, 2, 2)}
    penalty = ConsolidatedPenalty(lambda_reg=2.5, lambda_mode="per_task")
    for _ in range(3):
        penalty.add_task({n: torch.rand(s, dtype=torch.float64) for n, s in shapes.items()},
                         {n: torch.randn(s, dtype=torch.float64) for n, s in shapes.items()})
    params = {n: torch.randn(s, dtype=torch.float64, requires_grad=True) for n, s in shapes.items()}
    params["b"].grad = torch.randn(3, dtype=torch.float64)  # existing gradients are added to
    before = params["b"].grad.clone()
    value = penalty.add_gradient_(params)
    expected_value = penalty.value(params)
    expected = torch.autograd.grad(expected_value, list(params.values()))
    assert value == pytest.approx(float(expected_value.detach()), rel=1e-12)
    for (name, p), g in zip(params.items(), expected):
        torch.testing.assert_close(p.grad, g + (before if name == "b" else 0), rtol=1e-12,
                                   atol=1e-12, msg=name)


def test_add_gradient_scales_by_factor():
    torch.manual_seed(12)
    penalty = ConsolidatedPenalty(lambda_reg=2.5)
    penalty.add_task({"a": torch.rand(4, 3, dtype=torch.float64)},
                     {"a": torch.randn(4, 3, dtype=torch.float64)})
    theta = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(3.0 * penalty.value({"a": theta}), [theta])[0]
    penalty.add_gradient_({"a": theta}, factor=3.0)
    torch.testing.assert_close(theta.grad, expected, rtol=1e-12, atol=1e-12)


class GradientReader(SupervisedPlugin):
    """Reads the gradients in after_backward, as A-GEM does."""

    def __init__(self):
        super().__init__()
        self.grads = []

    def after_backward(self, strategy, **kwargs):
        self.grads.append([p.grad.clone() for p in strategy.model.parameters()
                           if p.grad is not None])


class LossReplacer(SupervisedPlugin):
    """Replaces the loss in before_backward by one that does not pass through it."""

    def before_backward(self, strategy, **kwargs):
        strategy.loss = strategy.criterion()


def _two_experiences(plugins, start, bm):
    model = copy.deepcopy(start)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     train_mb_size=32, device="cpu", plugins=plugins, evaluator=None)
    for exp in bm.train_stream[:2]:
        torch.manual_seed(0)
        strategy.train(exp, eval_streams=[])


def test_a_plugin_listed_first_sees_the_analytic_gradient_in_after_backward():
    """The analytic gradient is in .grad when backward returns: a plugin before AlphaMAS
    in the list reads the same gradients in both modes."""
    torch.manual_seed(13)
    bm = digits_benchmark(n_train=300)
    start = MultiHeadMLP(hidden=16)
    grads = {}
    for mode in ("analytic", "autograd"):
        reader, plugin = GradientReader(), AlphaMASPlugin(lambda_reg=5.0, penalty_gradient=mode)
        _two_experiences([reader, plugin], start, bm)
        assert plugin.last_penalty > 0
        grads[mode] = reader.grads
    for a, b in zip(grads["analytic"], grads["autograd"]):
        for ga, gb in zip(a, b):
            torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-7)


def test_a_replaced_loss_gets_the_gradient_in_after_backward_with_one_warning():
    torch.manual_seed(14)
    bm = digits_benchmark(n_train=300)
    plugin = AlphaMASPlugin(lambda_reg=5.0)
    with pytest.warns(UserWarning, match="added in after_backward") as caught:
        _two_experiences([plugin, LossReplacer()], MultiHeadMLP(hidden=16), bm)
    assert sum("added in after_backward" in str(w.message) for w in caught) == 1
    assert plugin.last_penalty > 0


def _train(penalty_gradient: str, model, bm, steps_seed: int = 0):
    plugin = AlphaMASPlugin(lambda_reg=5.0, penalty_gradient=penalty_gradient)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05,
                                                            momentum=0.9),
                     train_mb_size=64, train_epochs=1, device="cpu", plugins=[plugin],
                     evaluator=None)
    penalties = []
    for exp in bm.train_stream[:3]:
        torch.manual_seed(steps_seed)  # same shuffling for both variants
        strategy.train(exp, eval_streams=[])
        penalties.append(plugin.last_penalty)
    return model, plugin, penalties


def test_analytic_penalty_gradient_gives_the_same_updates_as_autograd():
    torch.manual_seed(10)
    bm = digits_benchmark(n_train=500)
    start = MultiHeadMLP(hidden=16)
    analytic, plugin_a, pen_a = _train("analytic", copy.deepcopy(start), bm)
    autograd, plugin_b, pen_b = _train("autograd", copy.deepcopy(start), bm)
    assert plugin_a.penalty.num_tasks == 3 and pen_a[-1] > 0
    assert pen_a == pytest.approx(pen_b, rel=1e-4)
    state_a, state_b = analytic.state_dict(), autograd.state_dict()
    for name in state_a:
        torch.testing.assert_close(state_a[name], state_b[name], rtol=1e-4, atol=1e-5, msg=name)
    trunk = start.trunk.state_dict()
    moved = max(float((state_a[f"trunk.{n}"] - t).abs().max()) for n, t in trunk.items())
    assert moved > 1e-2  # the comparison is not between untrained models
