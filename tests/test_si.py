"""Synaptic Intelligence (ours) against hand computations; Avalanche's, as it ships, on CPU;
the L2 anchor penalty."""
from __future__ import annotations

import math

import pytest
import torch
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, SynapticIntelligencePlugin

from alpha_mas_avalanche import L2Plugin, SIPlugin
from alpha_mas_avalanche.synaptic import SynapticIntelligence
from digits import MultiHeadMLP, digits_benchmark


# ------------------------------------------------------------------ the math alone
def test_path_integral_equals_a_hand_computation_on_a_two_parameter_quadratic():
    """Loss 0.5 * sum a_i (theta_i - t_i)^2, four plain SGD steps, then a second task."""
    a, target, lr, xi = [2.0, 0.5], [1.0, -3.0], 0.1, 0.1
    theta = [0.0, 0.0]
    si = SynapticIntelligence(strength=7.0, damping=xi)
    param = torch.tensor(theta, dtype=torch.float64)
    si.begin_task({"w": param})
    omega = [0.0, 0.0]
    for _ in range(4):
        grad = [a[i] * (theta[i] - target[i]) for i in range(2)]
        new = [theta[i] - lr * grad[i] for i in range(2)]
        omega = [omega[i] - grad[i] * (new[i] - theta[i]) for i in range(2)]
        si.before_step({"w": param})
        param.copy_(torch.tensor(new, dtype=torch.float64))
        si.after_step({"w": param}, {"w": torch.tensor(grad, dtype=torch.float64)})
        theta = new
    increment = si.end_task({"w": param})
    expected = [omega[i] / (theta[i] ** 2 + xi) for i in range(2)]  # Delta = theta - 0
    assert increment["w"].tolist() == pytest.approx(expected, rel=1e-12)
    # by hand for the first coordinate: g = 2(theta - 1), theta_k = 1 - 0.8^k
    g = [-2 * 0.8 ** k for k in range(4)]
    assert omega[0] == pytest.approx(sum(0.1 * gk * gk for gk in g), rel=1e-12)

    # the penalty and its gradient around the anchor theta_end
    x = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    value = si.value({"w": x})
    by_hand = 7.0 * sum(expected[i] * (x[i].item() - theta[i]) ** 2 for i in range(2))
    assert float(value) == pytest.approx(by_hand, rel=1e-12)
    x.grad = torch.zeros_like(x)
    assert si.add_gradient_({"w": x}) == pytest.approx(by_hand, rel=1e-12)
    assert x.grad.tolist() == pytest.approx(
        [2 * 7.0 * expected[i] * (x[i].item() - theta[i]) for i in range(2)], rel=1e-12)

    # a second task adds its own increment, with Delta measured from the new start
    start = param.clone()
    si.begin_task({"w": param})
    si.before_step({"w": param})
    param.add_(torch.tensor([0.5, -0.25], dtype=torch.float64))
    si.after_step({"w": param}, {"w": torch.tensor([-1.0, 2.0], dtype=torch.float64)})
    second = si.end_task({"w": param})
    assert second["w"].tolist() == pytest.approx(
        [0.5 / (0.25 + xi), 0.5 / (0.0625 + xi)], rel=1e-12)
    assert si.importance["w"].tolist() == pytest.approx(
        [expected[0] + second["w"][0].item(), expected[1] + second["w"][1].item()])
    assert si.anchor["w"].tolist() == (start + torch.tensor([0.5, -0.25], dtype=torch.float64)).tolist()


def test_negative_path_contributions_are_kept_unclipped_and_new_parameters_carry_none():
    si = SynapticIntelligence(1.0, 0.1)
    w = torch.zeros(2)
    si.begin_task({"w": w})
    si.before_step({"w": w})
    w.add_(torch.tensor([1.0, 1.0]))
    si.after_step({"w": w}, {"w": torch.tensor([1.0, -1.0])})  # a step that raised the loss
    si.end_task({"w": w})
    assert si.importance["w"].tolist() == pytest.approx([-1 / 1.1, 1 / 1.1])
    new = torch.ones(3, requires_grad=True)
    assert float(si.value({"w": w, "head": new})) == 0.0


@pytest.mark.parametrize("kwargs, name", [({"si_lambda": 0.0}, "strength"),
                                          ({"si_lambda": math.nan}, "strength"),
                                          ({"damping": -1.0}, "damping")])
def test_bad_si_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SIPlugin(**kwargs)


# --------------------------------------------------------------- in Avalanche
class GradientTap(SupervisedPlugin):
    """Listed before the SI plugin: copies the task-loss gradients of every step."""

    def __init__(self):
        super().__init__()
        self.squared: dict[str, torch.Tensor] = {}

    def after_backward(self, strategy, **kwargs):
        for name, p in strategy.model.named_parameters():
            if p.grad is not None:
                self.squared[name] = self.squared.get(name, 0) + p.grad.detach() ** 2


def _strategy(plugins, seed=0, epochs=3, adam=False, device="cpu"):
    torch.manual_seed(seed)
    model = MultiHeadMLP(hidden=32)
    optimizer = (torch.optim.Adam(model.parameters(), lr=0.01) if adam
                 else torch.optim.SGD(model.parameters(), lr=0.1))
    return Naive(model=model, optimizer=optimizer,
                 train_mb_size=32, train_epochs=epochs, device=device, plugins=plugins,
                 evaluator=EvaluationPlugin(loggers=[]))


def test_si_plugin_first_task_importance_is_lr_times_summed_squared_gradients(device):
    """With plain SGD and no penalty yet, each step moves theta by -lr g, so
    omega = lr * sum_steps g^2 and Omega * (Delta^2 + xi) = omega, parameter by parameter."""
    bm = digits_benchmark(seed=0)
    tap, plugin = GradientTap(), SIPlugin(si_lambda=1.0, damping=0.1)
    strategy = _strategy([tap, plugin], device=device)
    start = {n: p.detach().clone() for n, p in strategy.model.named_parameters()}
    strategy.train(bm.train_stream[0])
    for name, p in strategy.model.named_parameters():
        if name not in tap.squared:  # heads not used by the task
            continue
        delta = p.detach() - start[name]
        torch.testing.assert_close(plugin.penalty.importance[name] * (delta ** 2 + 0.1),
                                   0.1 * tap.squared[name], rtol=1e-4, atol=1e-9)


class TaskGradientCheck(SupervisedPlugin):
    """Listed after the SI plugin: its ``g`` must be ``.grad`` minus the penalty's gradient,
    the latter by autograd through ``penalty.value``."""

    def __init__(self, si: SIPlugin):
        super().__init__()
        self.si, self.checked = si, 0

    def after_backward(self, strategy, **kwargs):
        if self.si.penalty.num_tasks == 0:
            return
        params = dict(strategy.model.named_parameters())
        names = [n for n in self.si._grads if n in self.si.penalty.importance]
        penalty_grads = torch.autograd.grad(self.si.penalty.value(params),
                                            [params[n] for n in names], allow_unused=True)
        for name, penalty_grad in zip(names, penalty_grads):
            expected = params[name].grad - (0 if penalty_grad is None else penalty_grad)
            torch.testing.assert_close(self.si._grads[name], expected, rtol=1e-5, atol=1e-7)
        self.checked += 1


def test_si_path_integral_uses_the_gradient_without_its_own_penalty_in_later_tasks(device):
    bm = digits_benchmark(seed=0)
    si = SIPlugin(si_lambda=50.0)
    check = TaskGradientCheck(si)
    strategy = _strategy([si, check], epochs=1, device=device)
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    assert check.checked > 0 and si.last_penalty > 0


def _first_task_forgetting(plugins, seed, device="cpu"):
    bm = digits_benchmark(seed=0)
    strategy = _strategy(plugins, seed=seed, adam=True, device=device)
    accs = []
    for exp in bm.train_stream:
        strategy.train(exp)
        model = strategy.model.eval()
        data = bm.test_stream[0].dataset
        x = torch.stack([data[i][0] for i in range(len(data))])
        y = torch.tensor([data[i][1] for i in range(len(data))])
        with torch.no_grad():
            accs.append(float((model(x.to(device), 0).argmax(1).cpu() == y).float().mean()))
    return accs[0] - accs[-1], strategy


@pytest.mark.slow
def test_si_and_l2_forget_the_first_task_less_than_naive_and_penalise_only_after_it(device):
    """Adam 0.01 on digits (measured: first-task forgetting Naive 0.44 / 0.24 on seeds 0 / 1,
    SI c=100 0.0 / 0.0; with SGD 0.1, c >= 1000 diverges)."""
    results = {}
    for name, make in (("naive", lambda: []), ("si", lambda: [SIPlugin(si_lambda=100.0)]),
                       ("l2", lambda: [L2Plugin(lambda_reg=1.0)])):
        per_seed = []
        for seed in (0, 1):
            plugins = make()
            forgetting, _ = _first_task_forgetting(plugins, seed, device)
            per_seed.append(forgetting)
            if plugins:
                assert plugins[0].penalty.num_tasks >= 1
                assert math.isfinite(plugins[0].last_penalty) and plugins[0].last_penalty > 0
        results[name] = sum(per_seed) / len(per_seed)
    print(results)
    assert results["naive"] > 0.08, results
    assert results["si"] < results["naive"] - 0.04, results
    assert results["l2"] < results["naive"] - 0.04, results


def test_avalanche_si_has_no_effect_on_cpu_because_its_snapshots_alias_the_weights():
    """Avalanche 0.6 ``SynapticIntelligencePlugin.extract_weights`` stores
    ``param.detach().cpu().flatten()``: on a CPU tensor that is a view of the live weights,
    so the path integral is g * 0 and the penalty is 0 whatever ``si_lambda``."""
    bm = digits_benchmark(seed=0)
    finals = []
    for si_lambda in (1.0, 1000.0):
        plugin = SynapticIntelligencePlugin(si_lambda=si_lambda)
        strategy = _strategy([plugin], epochs=1)
        for exp in bm.train_stream[:3]:
            strategy.train(exp)
        importance = plugin.ewc_data[1]
        assert all(float(t.data.abs().sum()) == 0.0 for t in importance.values())
        name = next(iter(plugin.syn_data["old_theta"]))
        before_step = plugin.syn_data["old_theta"][name].data
        live = dict(strategy.model.named_parameters())[name]
        assert before_step.data_ptr() == live.data_ptr()  # the "snapshot" is the live tensor
        finals.append(torch.cat([p.detach().flatten() for p in strategy.model.parameters()]))
    assert torch.equal(finals[0], finals[1])


@pytest.mark.parametrize("make", [lambda: SIPlugin(si_lambda=5.0), lambda: L2Plugin(0.5)],
                         ids=["si", "l2"])
def test_checkpoint_round_trip_keeps_the_penalty(tmp_path, make, device):
    bm = digits_benchmark(seed=0)
    plugin = make()
    strategy = _strategy([plugin], epochs=1, device=device)
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    fname = tmp_path / "ckpt.pkl"
    save_checkpoint(strategy, fname)
    params = dict(strategy.model.named_parameters())
    expected = float(plugin.penalty.value(params))
    assert expected == 0.0 or math.isfinite(expected)
    fresh, next_exp = maybe_load_checkpoint(_strategy([make()], seed=5, epochs=1, device=device), fname)
    assert next_exp == 2
    loaded = next(p for p in fresh.plugins if type(p) is type(plugin))
    assert float(loaded.penalty.value(dict(fresh.model.named_parameters()))) == expected
    other = make()
    other.load_state_dict(plugin.state_dict())
    moved = {n: p.detach() + 0.01 for n, p in params.items()}
    assert float(other.penalty.value(moved)) == float(plugin.penalty.value(moved)) > 0


@pytest.mark.parametrize("make_plugin", [lambda: L2Plugin(0.5), lambda: SIPlugin(si_lambda=5.0)],
                         ids=["l2", "si"])
def test_beside_agem_in_both_orders_the_update_sees_the_penalty(make_plugin):
    """The penalty's gradient is added first thing in backward, so A-GEM projects the full
    gradient whichever plugin comes first: L2 gives the same parameters in both orders (SI's
    importance reads .grad after A-GEM when A-GEM is listed first, so SI may differ)."""
    from avalanche.training.plugins import AGEMPlugin

    from compatibility_helpers import benchmark, make, params_of, seed_all
    from compatibility_helpers import train as train_stream

    bm = benchmark(task_il=True)
    finals = {}
    for order in ("agem_first", "plugin_first"):
        seed_all(0)
        model = MultiHeadMLP(hidden=16)
        plugin, agem = make_plugin(), AGEMPlugin(patterns_per_experience=40, sample_size=20)
        pair = [agem, plugin] if order == "agem_first" else [plugin, agem]
        strategy = make(Naive, model, pair)
        train_stream(strategy, bm.train_stream[:3])
        assert plugin.penalty.num_tasks >= 1 and plugin.last_penalty > 0
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
        finals[order] = params_of(model)
    if isinstance(plugin, L2Plugin):
        for name, value in finals["agem_first"].items():
            torch.testing.assert_close(value, finals["plugin_first"][name], rtol=0, atol=0)


class ReplaceLoss(SupervisedPlugin):
    """Listed after SI: recomputes the loss, so backward does not pass through the loss SI
    hooked and SI adds its penalty's gradient in ``after_backward``."""

    def before_backward(self, strategy, **kwargs):
        strategy.loss = strategy._criterion(strategy.mb_output, strategy.mb_y)


class HandPathIntegral(SupervisedPlugin):
    """Listed first: ``omega -= g * Delta theta`` per step for a linear softmax classifier,
    with ``g`` computed by hand (``(softmax - onehot)^T x / B``, no SI penalty in it); reads
    SI's running sum at the end of each experience, before SI folds it."""

    def __init__(self, si: SIPlugin):
        super().__init__()
        self.si, self.omega, self.seen = si, {}, []

    def before_training_exp(self, strategy, **kwargs):
        self.omega = {n: torch.zeros_like(p, dtype=torch.float64)
                      for n, p in strategy.model.named_parameters()}

    def before_update(self, strategy, **kwargs):
        model = strategy.model
        self.before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
        x, y = strategy.mb_x.double(), strategy.mb_y
        residual = torch.softmax(x @ self.before["weight"].T + self.before["bias"], 1)
        residual[torch.arange(len(y)), y] -= 1.0
        self.grad = {"weight": residual.T @ x / len(y), "bias": residual.mean(0)}

    def after_update(self, strategy, **kwargs):
        for n, p in strategy.model.named_parameters():
            self.omega[n] -= self.grad[n] * (p.detach().double() - self.before[n])

    def after_training_exp(self, strategy, **kwargs):
        self.seen.append(({n: o.clone() for n, o in self.omega.items()},
                          {n: o.double().clone() for n, o in self.si.penalty._omega.items()}))


def test_si_path_integral_excludes_its_penalty_when_added_after_backward():
    """Zenke et al.: omega accumulates ``-g_unreg * Delta theta``. Another plugin replaces the
    loss, so the penalty's gradient is added in ``after_backward``; the path integral of the
    second task (penalty active) still equals the hand computation without the penalty."""
    bm = digits_benchmark(seed=0)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 2)
    si = SIPlugin(si_lambda=50.0)
    hand = HandPathIntegral(si)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     train_mb_size=32, train_epochs=1, plugins=[hand, si, ReplaceLoss()],
                     evaluator=EvaluationPlugin(loggers=[]))
    strategy.train(bm.train_stream[0])
    with pytest.warns(UserWarning, match="after_backward"):
        strategy.train(bm.train_stream[1])
    assert si.last_penalty > 0
    for expected, got in hand.seen:
        for name in ("weight", "bias"):
            assert float(expected[name].abs().max()) > 1e-3
            torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-7)
