"""The parameter names the registry entries carry (checked without torch) agree with the
plugin constructors and benchmark constructors; name errors carry a suggestion and come
before torch is imported; AlphaMAS takes ``lambda_reg``/``lambda_mode`` in configs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alpha_mas_avalanche.data.names import BENCHMARKS, DATA_FREE_BENCHMARKS, LONG_STREAMS
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.methods import REGISTRY, accepted_params, build_method, method_label
from alpha_mas_avalanche.experiment.presets import PRESETS, preset


def test_every_registry_entry_names_its_constructor_parameters():
    for name, entry in REGISTRY.items():
        assert entry.params is not None, name
        assert set(entry.params) == set(accepted_params(name)), name


def test_every_benchmark_name_builds_and_only_the_data_free_ones_ignore_the_data_root(tmp_path):
    from alpha_mas_avalanche.data import DatasetNotFoundError, make_benchmark

    for name in BENCHMARKS:
        if name in DATA_FREE_BENCHMARKS:
            bm = make_benchmark(name, data_root=tmp_path / "empty", train_samples_per_task=8,
                                eval_samples_per_task=8)
            assert len(bm.train_stream) == 5
        else:
            scenario = "domain" if name in LONG_STREAMS else "task"
            with pytest.raises(DatasetNotFoundError):
                make_benchmark(name, scenario=scenario, data_root=tmp_path / "empty")


def test_every_preset_is_a_valid_config():
    for name in PRESETS:
        assert isinstance(preset(name), ExperimentConfig)


@pytest.mark.parametrize(("config", "message"), [
    ({"benchmark": "split_cifar"}, "benchmark: expected one of 'permuted_mnist', "),
    ({"benchmark": "split_cifar"}, "got 'split_cifar' (did you mean 'split_cifar10'?)"),
    ({"methods": ["alphamas"]}, "methods[0]: expected a method name, one of 'alpha_mas', "),
    ({"methods": ["naive", {"name": "EWC"}]}, "methods[1].name: expected a method name"),
    ({"methods": ["naive", {"name": "EWC"}]}, "got 'EWC' (did you mean 'ewc'?)"),
    ({"methods": [{"name": "mas", "params": {"lamda_reg": 1.0}}]},
     "methods[mas].params.lamda_reg: mas has no parameter 'lamda_reg' (did you mean 'lambda_reg'?)"),
    ({"methods": [{"name": "si", "sweep": {"silambda": [1.0]}}]}, "(did you mean 'si_lambda'?)"),
    ({"methods": [{"name": "si", "selct": {}}]},
     "methods[0]: unknown key 'selct' (did you mean 'select'?); accepted keys: 'name', "),
    ({"optimiser": "sgd"}, "config: unknown key 'optimiser' (did you mean 'optimizer'?); "
                           "accepted keys: 'amp', 'batch_size', "),
    ({"scenario": "Class"}, "(did you mean 'class'?)"),
])
def test_name_errors_name_the_key_list_each_name_once_quoted_and_suggest(config, message):
    with pytest.raises(ValueError) as err:
        ExperimentConfig.from_dict(config)
    assert message in str(err.value), str(err.value)
    assert "[" not in str(err.value).split(":", 1)[1].replace("methods[", "")  # no list reprs
    assert "\"'" not in str(err.value)  # no doubled quotes


def test_name_errors_come_before_torch_is_imported():
    done = subprocess.run([sys.executable, "-c", """
import json, sys
from alpha_mas_avalanche.experiment.config import ExperimentConfig
errors = []
for data in ({"benchmark": "split_mnst", "methods": ["ewc", "mas"]},
             {"methods": ["ewc", {"name": "mas", "params": {"lamda_reg": 1.0}}]},
             {"methods": ["ewc", "alphamas"]}):
    try:
        ExperimentConfig.from_dict(data)
    except ValueError as err:
        errors.append(str(err))
print(json.dumps({"errors": len(errors), "torch": "torch" in sys.modules}))
"""], capture_output=True, text=True, timeout=300)
    assert json.loads(done.stdout.splitlines()[-1]) == {"errors": 3, "torch": False}, done.stderr


def test_alpha_mas_takes_lambda_reg_or_lambda_multiplier_and_lambda_mode():
    by_multiplier = build_method("alpha_mas_writeup", MethodConfig("alpha_mas_writeup").params, 5)[1][0]
    assert by_multiplier.penalty.lambda_reg == 5.0  # registry default: multiplier 1 x N
    assert method_label("alpha_mas_writeup", {"lambda_multiplier": 1.5}) == "AlphaMAS λ=1.5N"
    tuned = build_method("alpha_mas", MethodConfig("alpha_mas").params, 5)[1][0]
    assert tuned.penalty.lambda_reg == 1.0  # registry default; its grid chooses on validation
    assert build_method("alpha_mas", {"lambda_multiplier": 2.0}, 5)[1][0].penalty.lambda_reg == 10.0
    config = MethodConfig("alpha_mas", params={"lambda_reg": 7.0, "lambda_mode": "per_task"})
    plugin = build_method("alpha_mas", config.params, 5)[1][0]
    assert (plugin.penalty.lambda_reg, plugin.penalty.lambda_mode) == (7.0, "per_task")
    assert method_label("alpha_mas", config.params) == "AlphaMAS"
    with pytest.raises(ValueError, match=r"give 'lambda_reg' or 'lambda_multiplier', not both"):
        MethodConfig("alpha_mas", params={"lambda_reg": 7.0}, sweep={"lambda_multiplier": [1.0]})


def test_a_method_registered_at_run_time_is_accepted_and_checked_against_its_constructor():
    from alpha_mas_avalanche.experiment.methods import MethodEntry, _plugin, register

    register(MethodEntry("test_runtime_l2", "L2 (test)", "naive",
                         _plugin("alpha_mas_avalanche.plugins.l2", "L2Plugin")))
    try:
        config = ExperimentConfig.from_dict(
            {"methods": [{"name": "test_runtime_l2", "params": {"lambda_reg": 0.5}}]})
        assert config.methods[0].name == "test_runtime_l2"
        with pytest.raises(ValueError, match=r"methods\[test_runtime_l2\]\.params\.lamda_reg: "
                                             r"test_runtime_l2 has no parameter 'lamda_reg' "
                                             r"\(did you mean 'lambda_reg'\?\); accepted: 'lambda_reg'"):
            MethodConfig("test_runtime_l2", params={"lamda_reg": 0.5})
    finally:
        REGISTRY.pop("test_runtime_l2")


def test_a_config_builds_each_plugin_once_and_checks_ranged_grids_without_building():
    from alpha_mas_avalanche.experiment.methods import MethodEntry, _plugin, register

    built = []
    l2 = _plugin("alpha_mas_avalanche.plugins.l2", "L2Plugin")

    def build(params, n_tasks):
        built.append(dict(params))
        return l2(params, n_tasks)

    build.takes = l2.takes  # the L2 plugin's constructor, counted

    register(MethodEntry("test_counted", "Counted (test)", "naive", build,
                         params=("lambda_reg",), ranges={"lambda_reg": "positive"}))
    try:
        MethodConfig("test_counted", select={"lambda_reg": [0.1, 1.0, 10.0, 100.0]})
        assert built == [{"lambda_reg": 0.1}]  # once, at the grid's first value
        with pytest.raises(ValueError, match=r"select\.lambda_reg=0\.0: expected a finite number > 0"):
            MethodConfig("test_counted", select={"lambda_reg": [1.0, 0.0]})
    finally:
        del REGISTRY["test_counted"]
