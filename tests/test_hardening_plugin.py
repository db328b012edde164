"""Bad input to AlphaMASPlugin and mas_importance: property-based tests over every
argument, non-finite data, empty data, no parameters, a model changing dtype."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from alpha_mas_avalanche import AlphaMASPlugin, mas_importance
from alpha_mas_avalanche.plugins.alpha_mas import TrainingDivergedError

CASES = {"tried": 0}

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sampled_from([0, -1, 1, 0.0, -0.5, 1e308, -1e308, math.nan, math.inf, -math.inf, "", [],
                     "fixed", "per_task", "after_training", "last_epochs", "analytic",
                     "autograd", 256, 10**18, 1.0, 2.5, object(), len]),
)


def is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


#: parameter -> (is the value valid?, what the message must name)
PLUGIN_RULES = {
    "lambda_reg": lambda v: is_real(v) and math.isfinite(v) and v > 0,
    "lambda_mode": lambda v: isinstance(v, str) and v in ("fixed", "per_task"),
    "alpha_scaling": lambda v: isinstance(v, bool),
    "exact_importance": lambda v: isinstance(v, bool),
    "importance_data": lambda v: v is None or callable(v),
    "max_importance_samples": lambda v: v is None or is_count(v),
    "importance_batch_size": is_count,
    "importance_from": lambda v: isinstance(v, str) and v in ("after_training", "last_epochs"),
    "importance_epochs": is_count,
    "penalty_gradient": lambda v: isinstance(v, str) and v in ("analytic", "autograd"),
}


@pytest.mark.parametrize("parameter", sorted(PLUGIN_RULES))
@settings(max_examples=150, deadline=None)
@given(value=ANY_VALUE)
def test_plugin_parameter_valid_or_named_error(parameter, value):
    CASES["tried"] += 1
    if PLUGIN_RULES[parameter](value):
        plugin = AlphaMASPlugin(**{parameter: value})
        assert plugin.alphas == []
    else:
        with pytest.raises((ValueError, TypeError), match=parameter):
            AlphaMASPlugin(**{parameter: value})


IMPORTANCE_RULES = {
    "exact": lambda v: isinstance(v, bool),
    "batch_size": lambda v: is_count(v) and v <= 10**6,
    "max_samples": lambda v: v is None or (is_count(v) and v <= 10**6),
    "task_label": lambda v: v is None,  # the model below is single-head
}


@pytest.mark.parametrize("parameter", sorted(IMPORTANCE_RULES))
@settings(max_examples=100, deadline=None)
@given(value=ANY_VALUE)
def test_mas_importance_argument_valid_or_named_error(parameter, value):
    CASES["tried"] += 1
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    if parameter in ("batch_size", "max_samples") and is_count(value) and value > 10**6:
        return  # huge but valid counts: same code path as 10**6, checked below
    valid = IMPORTANCE_RULES[parameter](value)
    if parameter == "task_label" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        # a valid label for a model that takes none: the model's own TypeError
        with pytest.raises(TypeError):
            mas_importance(model, x, task_label=value)
        return
    if valid:
        omega = mas_importance(model, x, **{parameter: value})
        assert all(torch.isfinite(t).all() for t in omega.values())
    else:
        with pytest.raises((ValueError, TypeError), match=parameter):
            mas_importance(model, x, **{parameter: value})


def test_report_cases_tried():
    # 10 plugin parameters x 150 + 4 importance arguments x 100 examples at most
    print(f"hypothesis cases tried in this module: {CASES['tried']}")
    assert CASES["tried"] == 0 or CASES["tried"] >= 100


def test_huge_counts_are_accepted():
    model = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    reference = mas_importance(model, x)
    for kwargs in ({"batch_size": 10**18}, {"max_samples": 10**18}):
        got = mas_importance(model, x, **kwargs)
        for name in reference:
            torch.testing.assert_close(got[name], reference[name])


# ----------------------------------------------------------------- non-finite data
def make_plugin_with_one_task():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    plugin = AlphaMASPlugin(lambda_reg=2.0)
    plugin.consolidate(model, torch.randn(16, 4), experience=0)
    return model, plugin


def assert_state_equal(a, b):
    assert a["penalty"]["totals"] == b["penalty"]["totals"]
    assert a["penalty"]["offset"] == b["penalty"]["offset"]
    for group in ("weight", "center"):
        for name, tensor in a["penalty"][group].items():
            assert torch.equal(tensor, b["penalty"][group][name])


def test_input_with_nan_is_refused_naming_experience_and_parameter():
    model, plugin = make_plugin_with_one_task()
    before = plugin.state_dict()
    x = torch.randn(16, 4)
    x[3, 1] = math.nan
    with pytest.raises(ValueError, match=r"experience 1.*parameter '0\.weight'"):
        plugin.consolidate(model, x, experience=1)
    assert_state_equal(before, plugin.state_dict())


def test_model_that_overflows_is_refused_and_earlier_penalty_untouched():
    model, plugin = make_plugin_with_one_task()
    before = plugin.state_dict()
    with torch.no_grad():
        model[2].weight.fill_(1e30)  # outputs ~1e30, squared norm overflows float32
    with pytest.raises(ValueError, match=r"experience 7.*parameter"):
        plugin.consolidate(model, torch.randn(16, 4) + 3, experience=7)
    assert_state_equal(before, plugin.state_dict())


def test_empty_experience_and_no_trainable_parameters_say_what_is_wrong():
    model, plugin = make_plugin_with_one_task()
    with pytest.raises(ValueError, match=r"experience 2.*no samples"):
        plugin.consolidate(model, torch.randn(0, 4), experience=2)
    frozen = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(ValueError, match=r"experience 3.*no trainable parameters"):
        plugin.consolidate(frozen, torch.randn(5, 4), experience=3)
    assert len(plugin.alphas) == 1


def test_state_follows_a_model_moved_to_another_dtype():
    model, plugin = make_plugin_with_one_task()
    params32 = {n: p.detach().clone() + 0.1 for n, p in model.named_parameters()}
    value32 = float(plugin.penalty.value(params32))
    model.double()
    params64 = {n: p.detach().double() for n, p in params32.items()}
    value64 = plugin.penalty.value(params64)
    assert value64.dtype == torch.float64
    assert float(value64) == pytest.approx(value32, rel=1e-6)
    plugin.consolidate(model, torch.randn(16, 4, dtype=torch.float64), experience=1)
    assert all(t.dtype == torch.float64 for t in plugin.penalty.weight.values())
    assert len(plugin.alphas) == 2


class ConstantOutput(nn.Module):
    """Outputs that do not depend on the parameters (as iCaRL's eval-mode classifier)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, x):
        return self.layer(x) * 0 + 1


def test_zero_importance_is_skipped_with_a_warning_and_the_penalty_unchanged():
    model, plugin = make_plugin_with_one_task()
    before = plugin.state_dict()
    with pytest.warns(UserWarning, match=r"experience 4: the importance is 0 .*penalty is unchanged"):
        plugin.consolidate(ConstantOutput(), torch.randn(8, 4), experience=4)
    assert_state_equal(before, plugin.state_dict())
    assert len(plugin.alphas) == 1
    # NaN is still refused, not skipped
    x = torch.randn(8, 4)
    x[0, 0] = math.nan
    with pytest.raises(ValueError, match="experience 5"):
        plugin.consolidate(model, x, experience=5)


def _digits_run(lr, lambda_reg, experiences=2):
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin
    from digits import MultiHeadMLP, digits_benchmark

    import warnings
    bm = digits_benchmark(n_train=300)
    torch.manual_seed(0)
    model = MultiHeadMLP(hidden=16)
    plugin = AlphaMASPlugin(lambda_reg=lambda_reg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=lr), train_mb_size=16,
                         device="cpu", plugins=[plugin], evaluator=EvaluationPlugin(loggers=[]))
    for exp in bm.train_stream[:experiences]:
        strategy.train(exp, eval_streams=[])
    return plugin


def test_divergence_under_the_penalty_is_named_with_the_stability_bound():
    """lambda so large that lr * max curvature is far above 2: the weights go to NaN in
    experience 1, and the error says so (not an importance refusal)."""
    with pytest.raises(TrainingDivergedError,
                       match=r"training diverged in experience 1 \((parameter '.*' is (NaN|inf)|"
                             r"the penalty was (inf|nan) at iteration \d+;.*|the largest "
                             r"\|parameter\| grew from .* to .*)\); lower the learning rate or "
                             r"lambda_reg.*lr \* that = ") as caught:
        _digits_run(lr=0.5, lambda_reg=1e5)
    factor = float(str(caught.value).rsplit("= ", 1)[1].rstrip(")"))
    assert factor > 2


def test_divergence_before_any_penalty_says_no_penalty_was_active():
    with pytest.raises(TrainingDivergedError,
                       match=r"experience 0 .*is (NaN|inf).*no penalty was active yet"):
        _digits_run(lr=1e18, lambda_reg=1.0, experiences=1)


def test_max_stable_lr_is_the_sgd_bound_of_the_penalty_by_hand():
    plugin = _digits_run(lr=0.01, lambda_reg=2.0, experiences=1)
    weights = plugin.penalty.weight  # sum_t alpha_t Omega_t per parameter, after task 0
    curvature = 2.0 * plugin.penalty.scale * max(float(w.max()) for w in weights.values())
    assert plugin.penalty.max_curvature == pytest.approx(curvature, rel=1e-12)
    assert plugin.max_stable_lr() == pytest.approx(2.0 / curvature, rel=1e-12)
    assert plugin.max_stable_lr(momentum=0.9) == pytest.approx(2.0 * 1.9 / curvature, rel=1e-12)
    assert AlphaMASPlugin(lambda_reg=1.0).max_stable_lr() == math.inf  # no task yet
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\)"):
        plugin.max_stable_lr(momentum=1.0)
