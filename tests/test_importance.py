"""mas_importance against independent references: a slow per-sample autograd loop
(float64) and Avalanche's own MASPlugin importance."""
from __future__ import annotations

import pytest
import torch
from avalanche.training import Naive
from avalanche.models.utils import avalanche_model_adaptation
from avalanche.training.plugins import MASPlugin
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from alpha_mas_avalanche import mas_importance
from digits import MultiHeadMLP, digits_benchmark


def slow_reference(model, x, task_label=None):
    """1/M sum_k |d ||F(x_k)||^2 / d theta|, one sample at a time, plain autograd."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(x.shape[0]):
        xk = x[k : k + 1]
        out = model(xk) if task_label is None else model(xk, task_label)
        grads = torch.autograd.grad(out.pow(2).sum(), list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads):
            if g is not None:
                total[n] += g.abs()
    return {n: t / x.shape[0] for n, t in total.items()}


def assert_same(a, b, rtol=1e-9, atol=1e-12):
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=rtol, atol=atol, msg=f"parameter {n}")


def conv_bn_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 5),
    )


def test_exact_equals_slow_loop_on_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 11), nn.Tanh(), nn.Linear(11, 3)).double()
    x = torch.randn(37, 7, dtype=torch.float64)
    assert_same(mas_importance(model, x, batch_size=8), slow_reference(model, x))


def test_exact_equals_slow_loop_on_conv_net_with_batchnorm_in_eval_mode():
    torch.manual_seed(1)
    model = conv_bn_net().double()
    model.train()
    with torch.no_grad():  # non-trivial running statistics
        model(torch.randn(64, 1, 8, 8, dtype=torch.float64) * 2 + 1)
    stats = [b.clone() for b in model.buffers()]
    x = torch.randn(19, 1, 8, 8, dtype=torch.float64)
    got = mas_importance(model, x, batch_size=5)
    assert model.training, "training mode must be restored"
    for before, after in zip(stats, model.buffers()):
        assert torch.equal(before, after), "BatchNorm statistics must not change"
    assert_same(got, slow_reference(model, x))


def test_multi_head_selects_head_and_zeroes_the_others():
    torch.manual_seed(2)
    bm = digits_benchmark()
    model = MultiHeadMLP(hidden=16)
    for exp in bm.train_stream[:3]:  # three heads
        avalanche_model_adaptation(model, exp)
    model.double()
    x = torch.rand(23, 64, dtype=torch.float64)
    got = mas_importance(model, x, task_label=1, batch_size=10)
    assert_same(got, slow_reference(model, x, task_label=1))
    for name, omega in got.items():
        if ".classifiers.0." in name or ".classifiers.2." in name:
            assert torch.count_nonzero(omega) == 0, name
        if ".classifiers.1." in name:
            assert torch.count_nonzero(omega) > 0, name


def test_frozen_parameters_are_left_out_and_labels_never_read():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    model[0].weight.requires_grad_(False)
    x = torch.randn(12, 4, dtype=torch.float64)
    from_tensor = mas_importance(model, x)
    assert set(from_tensor) == {"0.bias", "2.weight", "2.bias"}
    labelled = TensorDataset(x, torch.randint(0, 2, (12,)))
    other_labels = TensorDataset(x, torch.randint(5, 9, (12,)))
    assert_same(from_tensor, mas_importance(model, labelled, batch_size=5))
    assert_same(from_tensor, mas_importance(model, DataLoader(other_labels, batch_size=4)))
    assert_same(from_tensor, slow_reference(model, x))


def test_max_samples_uses_the_first_inputs():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(30, 3, dtype=torch.float64)
    assert_same(mas_importance(model, x, max_samples=11, batch_size=4), slow_reference(model, x[:11]))


def test_batch_approximation_equals_avalanche_mas_plugin():
    torch.manual_seed(5)
    bm = digits_benchmark()
    model = MultiHeadMLP(hidden=32)
    exp = bm.train_stream[0]
    avalanche_model_adaptation(model, exp)
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=64,
                     device="cpu", evaluator=None)
    strategy.experience = exp
    avalanche = MASPlugin()._get_importance(strategy)
    ours = mas_importance(model, exp.dataset, task_label=0, exact=False, batch_size=64)
    assert ours.keys() <= avalanche.keys()
    for name in avalanche:
        expected = avalanche[name].data if hasattr(avalanche[name], "data") else avalanche[name]
        torch.testing.assert_close(ours[name], expected, rtol=1e-5, atol=1e-7, msg=name)
    # and the approximation is not the paper's definition: it underestimates
    exact = mas_importance(model, exp.dataset, task_label=0, batch_size=64)
    total = lambda d: sum(float(t.sum()) for t in d.values())  # noqa: E731
    assert total(ours) < total(exact)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"exact": 1}, "exact"), ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
     ({"max_samples": 0}, "max_samples"), ({"task_label": -1}, "task_label")],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=name):
        mas_importance(model, torch.randn(3, 2), **kwargs)


def test_empty_data_and_no_parameters_are_refused():
    with pytest.raises(ValueError, match="no samples"):
        mas_importance(nn.Linear(2, 2), torch.randn(0, 2))
    with pytest.raises(ValueError, match="no trainable parameters"):
        mas_importance(nn.ReLU(), torch.randn(3, 2))


@pytest.mark.parametrize("exact", [True, False])
def test_no_grad_caller_gets_the_same_importance(exact):
    """Under torch.no_grad() the importance is computed with gradients enabled: the same
    numbers as outside it (both exact paths and the batch approximation), not zeros."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.LayerNorm(7), nn.Linear(7, 3)).double()
    x = torch.randn(21, 5, dtype=torch.float64)
    want = mas_importance(model, x, exact=exact, batch_size=8)
    with torch.no_grad():
        got = mas_importance(model, x, exact=exact, batch_size=8)
    assert_same(got, want)
    if exact:
        assert_same(want, slow_reference(model, x))
    assert all(float(o.sum()) > 0 for o in got.values())


def test_inference_mode_is_refused_saying_what_to_do_and_inference_tensors_are_accepted():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    with torch.inference_mode():
        x = torch.randn(9, 4, dtype=torch.float64)  # an inference tensor
        with pytest.raises(RuntimeError, match=r"inference_mode\(\).*outside inference_mode"):
            mas_importance(model, x)
    assert x.is_inference()
    assert_same(mas_importance(model, x), slow_reference(model, x.clone()))
