"""Bad input to EBLLPlugin and IMMPlugin: property-based tests over every constructor
parameter (wrong types, NaN, inf, negative, zero, empty, huge). Each invalid value raises
ValueError/TypeError naming the parameter and the accepted values; each valid one
constructs and is stored as given."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpha_mas_avalanche import EBLLPlugin, IMMPlugin

CASES = {"EBLLPlugin": 0, "IMMPlugin": 0}
HUGE_INT = 10**400  # larger than any float

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans(), st.text(max_size=2)), max_size=3),
    st.tuples(st.floats(min_value=0.01, max_value=5.0)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sampled_from([0, -1, 1, 0.0, -0.0, 0.5, 1.0, -0.5, 0.999, 1e308, -1e308, 1e-308,
                     10**18, HUGE_INT, -HUGE_INT, math.nan, math.inf, -math.inf, "", [], (),
                     [math.nan], [0.0, 1.0], [1e309], [HUGE_INT], "uniform", "mode", "mean",
                     "exact", "sampled", "empirical", "Mode", "fixed", 256, object(), len,
                     lambda model, x: x, b"uniform", 1 + 0j]),
)


def is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v) -> bool:
    return is_real(v) and abs(v) < 2**1024 and math.isfinite(float(v))


def count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def merge_weights_ok(v) -> bool:
    if isinstance(v, str):
        return v == "uniform"
    if is_real(v):
        return finite(v) and 0 < v <= 1
    if isinstance(v, (list, tuple)):
        return bool(v) and all(finite(w) and w > 0 for w in v)
    return False


#: class -> parameter -> is the value valid?
RULES = {
    EBLLPlugin: {
        "code_size": count,
        "code_weight": lambda v: finite(v) and v >= 0,
        "reconstruction_weight": lambda v: finite(v) and v >= 0,
        "temperature": lambda v: finite(v) and v > 0,
        "distillation_weight": lambda v: finite(v) and v >= 0,
        "autoencoder_epochs": count,
        "autoencoder_lr": lambda v: finite(v) and v > 0,
        "autoencoder_batch_size": count,
        "feature_extractor": lambda v: v is None or callable(v),
    },
    IMMPlugin: {
        "mode": lambda v: isinstance(v, str) and v in ("mode", "mean"),
        "merge_weights": merge_weights_ok,
        "weight_transfer": lambda v: isinstance(v, bool),
        "l2_transfer": lambda v: finite(v) and v >= 0,
        "drop_transfer": lambda v: finite(v) and 0 <= v < 1,
        "fisher_estimate": lambda v: isinstance(v, str) and v in ("exact", "sampled", "empirical"),
        "max_fisher_samples": lambda v: v is None or count(v),
        "fisher_batch_size": count,
    },
}
CASES_LIST = [(cls, name) for cls, rules in RULES.items() for name in rules]


def test_rules_cover_every_constructor_parameter():
    import inspect

    for cls, rules in RULES.items():
        parameters = [p for p in inspect.signature(cls).parameters if p != "self"]
        assert sorted(parameters) == sorted(rules), cls.__name__


@pytest.mark.parametrize(("cls", "parameter"), CASES_LIST,
                         ids=[f"{c.__name__}.{p}" for c, p in CASES_LIST])
@settings(max_examples=120, deadline=None)
@given(value=ANY_VALUE)
def test_parameter_valid_or_named_error(cls, parameter, value):
    CASES[cls.__name__] += 1
    if RULES[cls][parameter](value):
        plugin = cls(**{parameter: value})
        stored = getattr(plugin, parameter)
        if isinstance(value, (list, tuple)):
            assert list(stored) == [float(w) for w in value]
        elif is_real(value):
            assert stored == value or stored == float(value)  # as given: nothing clamped
        else:
            assert stored is value or stored == value
    else:
        # the message names the parameter and says what is accepted
        with pytest.raises((ValueError, TypeError), match=rf"{parameter}: expected"):
            cls(**{parameter: value})


@pytest.mark.parametrize(("cls", "parameter"), [
    (EBLLPlugin, "code_weight"), (EBLLPlugin, "temperature"), (EBLLPlugin, "autoencoder_lr"),
    (IMMPlugin, "l2_transfer"), (IMMPlugin, "merge_weights"),
])
def test_int_too_large_for_a_float_is_a_named_value_error(cls, parameter):
    # float(10**400) raises OverflowError; the check must turn it into the usual message
    for value in (HUGE_INT, [HUGE_INT]) if parameter == "merge_weights" else (HUGE_INT,):
        with pytest.raises(ValueError, match=rf"{parameter}: expected"):
            cls(**{parameter: value})


def test_report_cases_tried():
    total = sum(CASES.values())
    print(f"hypothesis cases tried: EBLLPlugin {CASES['EBLLPlugin']}, "
          f"IMMPlugin {CASES['IMMPlugin']}, total {total}")
    assert total == 0 or total >= 17 * 50  # 0 when this test runs alone
