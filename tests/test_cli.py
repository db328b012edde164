"""The CLI's first answers (no torch/Avalanche/W&B import, errors naming the flag typed),
the config checks at load time, and the compatibility fixes (none on import; applied when
the plugins are loaded)."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.devices import missing_device_reason

HEAVY = ("torch", "avalanche", "wandb")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_help_list_methods_and_argument_errors_import_no_torch_avalanche_or_wandb():
    out = run_python(f"""
import contextlib, io, json, sys
from alpha_mas_avalanche.cli import main
codes = []
for argv in (["--help"], ["--list-methods"], ["--quick", "--threads", "0"], ["--epochs", "x"],
             ["--quick", "--methods", "nope"], ["--quick", "--ray-address", "auto"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exit:
            codes.append(exit.code)
print(json.dumps({{"codes": codes, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
""")
    result = json.loads(out.splitlines()[-1])
    assert result == {"codes": [0, 0, 2, 2, 2, 2], "heavy": []}


@pytest.mark.skipif(missing_device_reason("cuda") is None, reason="a GPU driver may be here")
def test_without_a_gpu_driver_cuda_is_refused_without_importing_torch():
    done = subprocess.run([sys.executable, "-c", """
import sys
from alpha_mas_avalanche.cli import main
code = main(["--quick", "--device", "cuda:1"])
print(code, "torch" in sys.modules)
"""], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["2", "False"], done.stderr[-2000:]
    assert "--device: 'cuda:1', but this machine has no GPU driver" in done.stderr


def test_a_device_this_machine_lacks_is_refused_before_avalanche_is_imported(tmp_path):
    """``compare-baselines --quick --device cuda`` on a machine without CUDA (``cuda:<one
    past the last GPU>`` on one with): exit 2, the message names --device and the devices
    this machine accepts, and the refusal came before any preset built a plugin."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", f"""
import sys, torch
from alpha_mas_avalanche.cli import main
device = f"cuda:{{torch.cuda.device_count()}}" if torch.cuda.is_available() else "cuda"
try:
    sys.exit(main(["--quick", "--device", device, "--output", {str(out)!r}]))
except SystemExit as exit:
    print(device, "avalanche" in sys.modules, "alpha_mas_avalanche.plugins" in sys.modules)
    raise
"""], capture_output=True, text=True, timeout=300)
    device, avalanche, plugins = done.stdout.split()
    assert done.returncode == 2, done.stderr[-3000:]
    assert (avalanche, plugins) == ("False", "False")
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"compare-baselines: error: --device: '{device}', but ")
    assert error.endswith("; accepted on this machine: cpu") or "accepted on this machine: cpu, " in error
    assert not out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--quick", "--device", "gpu"], "--device: expected cpu, cuda, cuda:<index> or mps, got 'gpu'"),
    (["--quick", "--threads", "0"], "--threads: expected an int >= 1, got 0"),
    (["--quick", "--workers", "0"], "--workers: expected an int >= 1, got 0"),
    (["--quick", "--epochs", "0"], "--epochs: expected an int >= 1, got 0"),
    (["--quick", "--train-samples", "-3"], "--train-samples: expected an int >= 1, got -3"),
    (["--quick", "--seeds", "1", "1"], "--seeds: expected distinct seeds, got [1, 1]"),
    (["--quick", "--seeds", "-1"], "--seeds: expected an int >= 0, got -1"),
    (["--quick", "--output", ""], "--output: expected a non-empty value"),
    (["--quick", "--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run: expected a finite number > 0"),
    (["--quick", "--gpus-per-run", "1"], "--gpus-per-run: only with --executor ray"),
    (["--quick", "--executor", "ray", "--workers", "2"], "--workers: only with --executor local"),
    (["--quick", "--methods", "mas", "alphamas"],
     "--methods: expected a method name, one of 'alpha_mas', 'alpha_mas_last_epochs', "),
    (["--quick", "--methods", "mas", "alphamas"], "got 'alphamas' (did you mean 'alpha_mas'?)"),
    (["--config", "/nonexistent/x.yaml"], "--config /nonexistent/x.yaml: No such file or directory"),
    ([], "choose a preset (--quick, --full, --cifar, --preset NAME) or --config FILE"),
])
def test_every_argument_error_names_the_flag_typed(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("compare-baselines: error: ") and message in err, err


def test_a_config_file_error_names_the_file_and_the_key(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text("benchmark: split_digits\nmethods:\n  - name: ewc\n    select: {ewc_lamda: [1.0, 10.0]}\n")
    assert main(["--config", str(path), "--save-config", str(tmp_path / "out.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"compare-baselines: error: --config {path}: methods[ewc].select.ewc_lamda: ewc has "
                   "no parameter 'ewc_lamda' (did you mean 'ewc_lambda'?); accepted: 'decay_factor', "
                   "'ewc_lambda', 'keep_importance_data'")
    assert not (tmp_path / "out.yaml").exists()


def test_config_parameter_names_are_checked_against_the_plugin_constructors():
    import inspect

    from alpha_mas_avalanche.plugins import AlphaMASPlugin

    with pytest.raises(ValueError) as err:
        MethodConfig("mas", params={"lambda_rge": 1.0})
    # the accepted names are AlphaMASPlugin's keyword parameters but the one the builder fixes
    expected = sorted(set(inspect.signature(AlphaMASPlugin).parameters) - {"alpha_scaling"})
    assert str(err.value) == (f"methods[mas].params.lambda_rge: mas has no parameter 'lambda_rge' "
                              f"(did you mean 'lambda_reg'?); accepted: "
                              f"{', '.join(map(repr, expected))}")
    with pytest.raises(ValueError, match=r"sweep\.lamda_multiplier: alpha_mas has no parameter "
                                         r"'lamda_multiplier' \(did you mean 'lambda_multiplier'\?\)"):
        ExperimentConfig.from_dict({"methods": [{"name": "alpha_mas", "sweep": {"lamda_multiplier": [1.0]}}]})
    with pytest.raises(ValueError, match=r"methods\[naive\]\.params\.x: .* accepted: none"):
        MethodConfig("naive", params={"x": 1})


@pytest.mark.parametrize(("method", "kind", "grid", "message"), [
    ("ewc", "select", {"ewc_lambda": ["1e5"]},  # PyYAML reads 1e5 as a string
     "methods[ewc].select.ewc_lambda: expected a real number, got '1e5' (YAML reads 1e5 as a string"),
    ("lwf", "select", {"alpha": [0.1, True]}, "methods[lwf].select.alpha: expected a real number, got True"),
    ("imm", "params", {"mode": 3}, "methods[imm].params.mode: expected a string, got 3"),
    ("ebll", "params", {"code_size": 2.5}, "methods[ebll].params.code_size: expected an int, got 2.5"),
    ("alpha_mas", "sweep", {"lambda_multiplier": [1.0, -2.0]},
     "methods[alpha_mas].sweep.lambda_multiplier=-2.0: expected a finite number > 0, got -2.0"),
    ("ewc", "select", {"ewc_lambda": [1.0, -5.0]},
     "methods[ewc].select.ewc_lambda=-5.0: expected a finite number >= 0, got -5.0"),
    ("imm", "sweep", {"mode": ["mean", "median"]},  # no range: built at each value
     "methods[imm].sweep.mode='median': IMM cannot be built with params {'mode': 'median'}"),
])
def test_config_values_are_type_checked_and_built_at_load_time(method, kind, grid, message):
    with pytest.raises(ValueError) as err:
        MethodConfig(method, **{kind: grid})
    assert str(err.value).startswith(message), str(err.value)


def test_valid_values_of_every_kind_pass():
    MethodConfig("imm", params={"merge_weights": [0.5, 0.5], "max_fisher_samples": None})
    MethodConfig("ewc", select={"ewc_lambda": [1, 1.0e+5]})  # ints are real numbers
    MethodConfig("si_avalanche", params={"si_lambda": [1.0, 2.0]})


def test_importing_the_package_imports_no_torch_but_its_names_work():
    out = run_python("""
import sys
import alpha_mas_avalanche
print("torch" in sys.modules)
""")
    assert out.split() == ["False"]
    from alpha_mas_avalanche import AlphaMASPlugin, mas_importance  # the lazy names resolve

    assert AlphaMASPlugin.__module__ == "alpha_mas_avalanche.plugins.alpha_mas"
    assert mas_importance.__module__ == "alpha_mas_avalanche.importance"


#: what the compatibility fixes would change: torch.optim's submodule names, wandb's two
#: names, the import machinery and the warning filters
STATE = """
import json, sys, warnings
import torch.optim, wandb
print(json.dumps({"optim": sorted(n for n in vars(torch.optim) if not n.startswith("_")),
                  "generate_id": hasattr(wandb.util, "generate_id"), "viz": hasattr(wandb, "viz"),
                  "meta_path": [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path],
                  "filters": len(warnings.filters)}))
"""


@pytest.mark.parametrize("package_first", [True, False])
def test_importing_the_package_alone_leaves_torch_optim_wandb_and_the_import_system_alone(package_first):
    untouched = json.loads(run_python(STATE).splitlines()[-1])
    code = "import alpha_mas_avalanche\n" + STATE if package_first else STATE.replace(
        "import torch.optim, wandb\n", "import torch.optim, wandb\nimport alpha_mas_avalanche\n")
    assert json.loads(run_python(code).splitlines()[-1]) == untouched


@pytest.mark.parametrize("torch_first", [False, True])
def test_optimizers_pickle_with_dill_once_the_plugins_are_loaded(torch_first):
    # without the fix dill fails on torch 2.14: "Can't pickle sentinel"
    order = ("import torch; from alpha_mas_avalanche import AlphaMASPlugin" if torch_first else
             "from alpha_mas_avalanche import AlphaMASPlugin; import torch")
    out = run_python(f"""
{order}
import dill
optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
copy = dill.loads(dill.dumps(optimizer))
print(type(copy).__module__, copy.param_groups[0]["lr"])
""")
    assert out.split() == ["torch.optim.sgd", "0.1"]


def test_only_qpsolvers_no_solver_warning_is_filtered():
    from alpha_mas_avalanche import compat

    compat.for_avalanche()  # again here: pytest restores its warning filters after each test
    text = ("no QP solver found on your system, you can install solvers from PyPI by "
            "``pip install qpsolvers[open_source_solvers]``")
    seen = []
    for message, module in ((text, "qpsolvers.solvers"), ("another warning", "qpsolvers.solvers"),
                            (text, "mypackage")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn_explicit(message, UserWarning, "solvers/__init__.py", 1087,
                                   module=module, registry={})
        seen.append([str(w.message) for w in caught])
    assert seen == [[], ["another warning"], [text]]
