"""The harness on a GPU: ``device`` checked when the config loads and before any run, the
device type and the precision in the settings key and the resume check (committed CPU
results keep theirs), ``--amp`` / ``--deterministic`` recorded with each run,
``environment.json`` appended per invocation, workers spread over GPUs. Runs go on the
``--device`` (CPU by default; ``pytest --device cuda`` runs them on CUDA)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from alpha_mas_avalanche.experiment.devices import worker_device
from alpha_mas_avalanche.experiment.specs import base_spec, single_task_specs
from alpha_mas_avalanche.experiment.store import check_resumable, record_environment
from alpha_mas_avalanche.experiment.records import load_records, record_paths, run_id_of

REPO = Path(__file__).resolve().parents[1]
TINY = dict(benchmark="split_digits", epochs=1, batch_size=32, train_samples_per_task=60,
            eval_samples_per_task=40)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "cuda1", 0])
def test_unknown_device_is_a_config_error(device):
    with pytest.raises(ValueError, match=r"^device: expected cpu, cuda, cuda:<index> or mps"):
        ExperimentConfig(device=device)


@pytest.mark.parametrize("key,value", [("amp", "fp32"), ("deterministic", "yes")])
def test_amp_and_deterministic_are_checked(key, value):
    with pytest.raises(ValueError, match=rf"^{key}: expected"):
        ExperimentConfig(**{key: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")
def test_cuda_without_cuda_fails_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--quick", "--device", "cuda", "--output", str(out)])
    assert code == 2 and not out.exists()
    # "but torch ... sees no CUDA device", or where no GPU driver is installed, that first
    assert "compare-baselines: error: --device: 'cuda', but " in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^device: 'cuda:0', but torch .* sees no CUDA"):
        run_experiment(ExperimentConfig(**TINY, device="cuda:0", output_dir=str(out)))
    assert not out.exists()


def test_committed_cpu_results_keep_their_settings_keys():
    """Every committed single-task record is found under the key its config gives now."""
    checked = 0
    for config_path in sorted(REPO.glob("results/*/config.yaml")):
        folder = config_path.parent
        names = {run_id_of(p) for p in record_paths(folder / "single_task")}
        if not names:
            continue
        config = ExperimentConfig.load(config_path)
        expected = {spec.run_id for spec in single_task_specs(config)}
        assert expected & names, folder
        checked += 1
    assert checked > 0


def test_device_type_and_precision_change_the_settings_key():
    config = ExperimentConfig(**TINY)
    keys = {}
    for name, changes in {"cpu": {}, "cpu:other_index": {"device": "cpu"},
                          "cuda": {"device": "cuda"}, "cuda:1": {"device": "cuda:1"},
                          "bf16": {"amp": "bf16"}, "det": {"deterministic": True}}.items():
        keys[name] = base_spec(ExperimentConfig(**{**TINY, **changes}), 0, [0, 1, 2, 3, 4],
                               phase="single_task", pair=0).settings_key()
    assert keys["cpu"] == keys["cpu:other_index"]
    assert keys["cuda"] == keys["cuda:1"]  # the device type, not the index
    assert len({keys["cpu"], keys["cuda"], keys["bf16"], keys["det"]}) == 4
    assert config.device == "cpu"


@pytest.mark.parametrize("change,resumable", [
    ({"device": "cuda"}, False), ({"amp": "bf16"}, False), ({"deterministic": True}, False),
    ({"device": "cpu", "wandb": "offline"}, True), ({"grid_extensions": 4}, True),
])
def test_resume_never_mixes_devices_or_precisions(tmp_path, change, resumable):
    base = dict(TINY, output_dir=str(tmp_path))
    ExperimentConfig(**base).save(tmp_path / "config.yaml")
    config = ExperimentConfig(**{**base, **change})
    if resumable:
        check_resumable(tmp_path, config)
    else:
        with pytest.raises(ValueError, match=r"holds results of a different experiment"):
            check_resumable(tmp_path, config)


def test_cuda_index_may_change_on_resume(tmp_path):
    ExperimentConfig(**TINY, device="cuda:0").save(tmp_path / "config.yaml")
    check_resumable(tmp_path, ExperimentConfig(**TINY, device="cuda:1"))


def test_a_config_written_before_amp_existed_resumes(tmp_path):
    data = ExperimentConfig(**TINY).to_dict()
    del data["amp"], data["deterministic"]
    (tmp_path / "config.yaml").write_text(json.dumps(data))  # YAML is a superset of JSON
    check_resumable(tmp_path, ExperimentConfig(**TINY))


def test_environment_appended_per_invocation(tmp_path):
    (tmp_path / "environment.json").write_text(json.dumps({"python": "3.10", "packages": {}}))
    record_environment(tmp_path)
    record_environment(tmp_path)
    environment = json.loads((tmp_path / "environment.json").read_text())
    assert [e["python"] for e in environment["invocations"]][0] == "3.10"
    assert len(environment["invocations"]) == 3
    latest = environment["invocations"][-1]
    assert environment["packages"]["torch"] == torch.__version__.split("+")[0] or \
        environment["packages"]["torch"] == torch.__version__
    for key in ("cuda_available", "cuda_build", "cudnn", "gpus", "driver", "time"):
        assert key in latest and latest[key] == environment[key]
    assert latest["cuda_available"] == torch.cuda.is_available()


def test_cuda_is_spread_over_gpus():
    assert [worker_device("cuda", k, 2) for k in range(4)] == ["cuda:0", "cuda:1"] * 2
    assert worker_device("cuda:1", 0, 2) == "cuda:1" and worker_device("cpu", 3, 2) == "cpu"
    assert worker_device("cuda", 3, 1) == "cuda"


def test_amp_and_determinism_recorded_with_each_run(tmp_path, device):
    """A tiny grid on the ``--device`` with bfloat16 autocast (float16 on CUDA) and
    deterministic algorithms: every run record says so; the accuracies are real numbers."""
    amp = "bf16" if torch.device(device).type == "cpu" else "fp16"
    config = ExperimentConfig(**TINY, methods=[MethodConfig("alpha_mas_writeup"), MethodConfig("naive")],
                              device=device, amp=amp, deterministic=True,
                              output_dir=str(tmp_path / "out"))
    try:
        run_experiment(config, report=False)
    finally:
        torch.use_deterministic_algorithms(False)
    records = load_records(tmp_path / "out" / "runs")
    assert len(records) == 2
    for record in records:
        assert record["spec"]["amp"] == amp and record["spec"]["deterministic"] is True
        assert record["spec"]["device"].split(":")[0] == torch.device(device).type
        assert 0.0 <= record["final_avg_acc"] <= 1.0
