"""Alpha weights and the constant-memory penalty against hand computations and the
naive per-task sum."""
from __future__ import annotations

import math

import pytest
import torch

from alpha_mas_avalanche import ConsolidatedPenalty, alpha_weights

SHAPES = {"layer.weight": (5, 4), "layer.bias": (5,), "head.weight": (3, 5)}


def random_task(gen, spread):
    importance = {n: torch.rand(s, generator=gen, dtype=torch.float64) ** 3 * spread
                  for n, s in SHAPES.items()}
    anchor = {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in SHAPES.items()}
    return importance, anchor


def naive_penalty(params, tasks, alphas):
    """sum_t alpha_t sum_ij Omega_t (theta - anchor_t)^2, one stored task at a time."""
    return sum(a * sum((om[n] * (params[n] - anc[n]) ** 2).sum() for n in params)
               for a, (om, anc) in zip(alphas, tasks))


def test_alpha_weights_satisfy_both_constraints():
    totals = [3.0, 0.25, 40.0, 7.5]
    alphas = alpha_weights(totals, 6.0)
    assert math.isclose(sum(alphas), 6.0, rel_tol=1e-12)
    products = [a * s for a, s in zip(alphas, totals)]
    assert max(products) - min(products) < 1e-12 * max(products)
    # by hand: H = 1/3 + 4 + 1/40 + 1/7.5, alpha_1 = 6 / (3 H)
    h = 1 / 3 + 4 + 1 / 40 + 1 / 7.5
    assert math.isclose(alphas[0], 6 / (3 * h), rel_tol=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_alpha_weights_refuse_bad_totals_and_lambda(bad):
    with pytest.raises(ValueError, match="S_t"):
        alpha_weights([1.0, bad], 1.0)
    with pytest.raises(ValueError, match="lambda_reg"):
        alpha_weights([1.0], bad)


@pytest.mark.parametrize("alpha_scaling, lambda_mode", [(True, "fixed"), (True, "per_task"), (False, "fixed")])
def test_constant_memory_penalty_equals_naive_sum_for_twelve_tasks(alpha_scaling, lambda_mode):
    gen = torch.Generator().manual_seed(0)
    penalty = ConsolidatedPenalty(2.5, lambda_mode, alpha_scaling)
    tasks = []
    for t in range(12):
        tasks.append(random_task(gen, spread=10.0 ** (t % 5 - 2)))
        penalty.add_task(*tasks[-1])
        assert len(penalty.weight) == len(penalty.center) == len(SHAPES)  # constant memory
    totals = [sum(float(o.sum()) for o in om.values()) for om, _ in tasks]
    if alpha_scaling:
        expected_alphas = alpha_weights(totals, 2.5 * (12 if lambda_mode == "per_task" else 1))
    else:
        expected_alphas = [2.5] * 12
    assert penalty.alphas == pytest.approx(expected_alphas, rel=1e-12)
    assert penalty.totals == pytest.approx(totals, rel=1e-12)

    params = {n: torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True)
              for n, s in SHAPES.items()}
    expected = naive_penalty(params, tasks, expected_alphas)
    got = penalty.value(params)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    expected_grads = torch.autograd.grad(expected, list(params.values()))
    got_grads = torch.autograd.grad(got, list(params.values()))
    for e, g in zip(expected_grads, got_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    # analytic gradient: the same numbers, added to .grad, and the same value
    for p in params.values():
        p.grad = torch.ones_like(p)
    value = penalty.add_gradient_(params)
    assert value == pytest.approx(float(expected), rel=1e-10)
    for p, e in zip(params.values(), expected_grads):
        torch.testing.assert_close(p.grad, e + 1, rtol=1e-10, atol=1e-12)


def test_reference_paper_two_parameter_example_by_hand():
    """Weights v, w; for T1 w is 5x as important as v; T2's importances are ten times
    larger. Plain MAS: v and w end up with nearly equal importance. Alpha-scaling keeps
    T1's 5:1 ratio visible."""
    t1 = {"v": torch.tensor(1.0, dtype=torch.float64), "w": torch.tensor(5.0, dtype=torch.float64)}
    t2 = {"v": torch.tensor(50.0, dtype=torch.float64), "w": torch.tensor(40.0, dtype=torch.float64)}
    anchor = {"v": torch.tensor(0.0, dtype=torch.float64), "w": torch.tensor(0.0, dtype=torch.float64)}

    plain = ConsolidatedPenalty(1.0, alpha_scaling=False)
    scaled = ConsolidatedPenalty(2.0)  # lambda = N = 2 tasks
    for penalty in (plain, scaled):
        penalty.add_task(t1, anchor)
        penalty.add_task(t2, anchor)
    # plain MAS: total importance v = 1 + 50 = 51, w = 5 + 40 = 45: ratio 45/51 = 0.88
    plain_v = plain.scale * float(plain.weight["v"])
    plain_w = plain.scale * float(plain.weight["w"])
    assert (plain_v, plain_w) == pytest.approx((51.0, 45.0))
    assert plain_w / plain_v == pytest.approx(0.882, abs=1e-3)
    # alpha-scaling: S1 = 6, S2 = 90, H = 1/6 + 1/90 = 16/90;
    # alpha_t = 2 / (S_t H) -> alpha_1 = 180/96 = 1.875, alpha_2 = 2/16 = 0.125
    assert scaled.alphas == pytest.approx([1.875, 0.125])
    assert [a * s for a, s in zip(scaled.alphas, scaled.totals)] == pytest.approx([11.25, 11.25])
    # per-parameter total: v = 1.875*1 + 0.125*50 = 8.125, w = 1.875*5 + 0.125*40 = 14.375
    scaled_v = scaled.scale * float(scaled.weight["v"])
    scaled_w = scaled.scale * float(scaled.weight["w"])
    assert (scaled_v, scaled_w) == pytest.approx((8.125, 14.375))
    assert scaled_w / scaled_v == pytest.approx(1.769, abs=1e-3)
    # T1's share of w's importance: 5/45 = 11% with plain MAS, 9.375/14.375 = 65% scaled
    assert 5 / plain_w == pytest.approx(0.111, abs=1e-3)
    assert scaled.alphas[0] * 5 / scaled_w == pytest.approx(0.652, abs=1e-3)


def test_refused_task_leaves_the_penalty_untouched():
    gen = torch.Generator().manual_seed(1)
    penalty = ConsolidatedPenalty(1.0)
    penalty.add_task(*random_task(gen, 1.0))
    before = penalty.state_dict()
    importance, anchor = random_task(gen, 1.0)
    importance["layer.bias"][2] = math.nan
    with pytest.raises(ValueError, match="layer.bias"):
        penalty.add_task(importance, anchor)
    zero = {n: torch.zeros(s, dtype=torch.float64) for n, s in SHAPES.items()}
    with pytest.raises(ValueError, match="S_t"):
        penalty.add_task(zero, anchor)
    after = penalty.state_dict()
    assert after["totals"] == before["totals"] and after["offset"] == before["offset"]
    for n in SHAPES:
        assert torch.equal(after["weight"][n], before["weight"][n])
        assert torch.equal(after["center"][n], before["center"][n])


def test_grown_parameter_is_penalised_only_on_its_old_part():
    penalty = ConsolidatedPenalty(1.0)
    penalty.add_task({"head": torch.tensor([1.0, 3.0])}, {"head": torch.tensor([0.5, -1.0])})
    grown = torch.tensor([1.5, -1.0, 100.0], requires_grad=True)
    # S = 4, alpha = 1 / 4 * 4 ... alpha_1 = lambda = 1: 1 * (1 * 1.0^2 + 3 * 0^2)
    assert float(penalty.value({"head": grown})) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"lambda_reg": 0}, "lambda_reg"), ({"lambda_reg": -2.0}, "lambda_reg"),
    ({"lambda_reg": math.nan}, "lambda_reg"), ({"lambda_mode": "sum"}, "lambda_mode"),
    ({"alpha_scaling": "yes"}, "alpha_scaling"),
])
def test_bad_constructor_values_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConsolidatedPenalty(**kwargs)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_on_the_penalty_alone_is_stable_exactly_below_the_documented_bound(momentum):
    """``lr * max_curvature < 2 (1 + momentum)``: torch's SGD on the penalty alone converges
    at 0.95 of that learning rate and diverges at 1.05 of it."""
    gen = torch.Generator().manual_seed(2)
    penalty = ConsolidatedPenalty(4.0)
    for _ in range(2):
        penalty.add_task(*random_task(gen, 3.0))
    curvature = penalty.max_curvature
    by_hand = 2 * penalty.scale * max(float(w.max()) for w in penalty.weight.values())
    assert curvature == pytest.approx(by_hand, rel=1e-12) and curvature > 0
    bound = 2 * (1 + momentum) / curvature
    distances = {}
    for factor in (0.95, 1.05):
        params = {n: (c + 1.0).clone().requires_grad_(True) for n, c in penalty.center.items()}
        optimizer = torch.optim.SGD(params.values(), lr=factor * bound, momentum=momentum)
        for _ in range(400):
            optimizer.zero_grad()
            penalty.value(params).backward()
            optimizer.step()
        distances[factor] = max(float((params[n] - penalty.center[n]).abs().max()) for n in params)
    assert distances[0.95] < 1.0  # the start is 1.0 away from the minimum everywhere
    assert distances[1.05] > 1e3, distances
    assert ConsolidatedPenalty(1.0).max_curvature == 0.0


def test_gradient_with_kept_work_tensors_is_the_hand_gradient_step_after_step():
    """``add_gradient_`` adds ``2 scale weight (theta - center)`` (float64 hand computation)
    and returns the penalty value, at every step with the same work tensors, after a layer
    grew, and on a copy made by pickling (which carries no work tensors)."""
    import pickle

    gen = torch.Generator().manual_seed(3)
    penalty = ConsolidatedPenalty(2.0)
    for _ in range(3):
        penalty.add_task(*random_task(gen, 1.0))
    shapes = dict(SHAPES)
    for step in range(3):
        if step == 2:  # the head grew a row: new work tensors of the new shape
            shapes["head.weight"] = (4, 5)
        params = {n: torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_()
                  for n, s in shapes.items()}
        for copy in (penalty, pickle.loads(pickle.dumps(penalty))):
            for p in params.values():
                p.grad = None
            value = copy.add_gradient_(params, factor=torch.tensor(0.5, dtype=torch.float64))
            by_hand = penalty.offset
            for name, p in params.items():  # the stored weight and center, zero-padded
                weight, center = torch.zeros_like(p), torch.zeros_like(p)
                old = tuple(slice(0, s) for s in SHAPES[name])
                weight[old], center[old] = penalty.weight[name][old], penalty.center[name][old]
                expected = 0.5 * 2 * penalty.scale * weight * (p.detach() - center)
                torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=1e-12)
                by_hand += float((weight * (p.detach() - center) ** 2).sum())
            assert float(value) == pytest.approx(penalty.scale * by_hand, rel=1e-12)
            grads = {n: p.grad.clone() for n, p in params.items()}  # made, not added to
            copy.add_gradient_(params, factor=torch.tensor(0.5, dtype=torch.float64))
            for name, p in params.items():  # an existing gradient is added to
                torch.testing.assert_close(p.grad, 2 * grads[name], rtol=1e-12, atol=1e-12)
    assert pickle.loads(pickle.dumps(penalty._work))._pairs == []


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("grad_set", [False, True], ids=["grad_none", "grad_set"])
def test_analytic_gradient_equals_autograd_of_the_value_without_host_sync(dtype, rtol, grad_set):
    """``add_gradient_`` adds exactly autograd's gradient of ``value`` (times a device-tensor
    factor) and returns ``value``, reading nothing back to the host."""
    from sync_counter import SyncCounter

    gen = torch.Generator().manual_seed(3)
    penalty = ConsolidatedPenalty(0.7)
    for spread in (1.0, 0.01):
        importance, anchor = random_task(gen, spread)
        penalty.add_task({n: t.to(dtype) for n, t in importance.items()},
                         {n: t.to(dtype) for n, t in anchor.items()})
    params = {n: torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
              for n, s in SHAPES.items()}
    expected = torch.autograd.grad(penalty.value(params), list(params.values()))
    start = {n: torch.randn(s, generator=gen, dtype=dtype) for n, s in SHAPES.items()}
    for name, p in params.items():
        p.grad = start[name].clone() if grad_set else None
    counter = SyncCounter()
    counter.start()
    counter.active = True
    try:
        value = penalty.add_gradient_(params, factor=torch.tensor(0.5, dtype=dtype))
    finally:
        counter.stop()
    assert counter.total == 0, counter.counts
    torch.testing.assert_close(value, penalty.value(params).detach(), rtol=rtol, atol=0)
    for (name, p), grad in zip(params.items(), expected):
        base = start[name] if grad_set else torch.zeros_like(grad)
        torch.testing.assert_close(p.grad, base + 0.5 * grad, rtol=rtol, atol=rtol * 1e-3)
