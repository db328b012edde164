"""Parallel grids: local worker processes and Ray give the sequential results; failures,
Ctrl-C and a killed driver lose nothing (real runs on scikit-learn digits)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from avalanche.core import SupervisedPlugin

from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from alpha_mas_avalanche.experiment.executors import LocalProcessExecutor, RayExecutor
from alpha_mas_avalanche.experiment.methods import REGISTRY, MethodEntry, register
from alpha_mas_avalanche.experiment.executors import sequential_executor
from alpha_mas_avalanche.experiment.records import decode_record, record_paths
from forkserver import forkserver_context

TINY = dict(benchmark="split_digits", epochs=1, batch_size=32, train_samples_per_task=60,
            eval_samples_per_task=40)
TIMING_KEYS = ("wall_time_s", "train_time_s")

pytestmark = pytest.mark.slow  # trains on real data or runs grids


class RaisingPlugin(SupervisedPlugin):
    """Test-only: raises before the third experience."""

    def before_training_exp(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == 2:
            raise RuntimeError("test-only failure before experience 2")


class ExitingPlugin(SupervisedPlugin):
    """Test-only: the process running it dies before the second experience."""

    def before_training_exp(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == 1:
            os._exit(3)


def register_test_methods() -> None:
    """Runs in the driver and (as the executors' ``setup``) in every worker."""
    register(MethodEntry("test_raises", "Raises (test)", "naive", lambda p, n: [RaisingPlugin()]))
    register(MethodEntry("test_dies", "Dies (test)", "naive", lambda p, n: [ExitingPlugin()]))


def tiny_config(out: Path, methods, seeds=(0, 1), **changes) -> ExperimentConfig:
    return ExperimentConfig(**{**TINY, "methods": methods, "seeds": list(seeds),
                               "output_dir": str(out), **changes})


GRID = [MethodConfig("alpha_mas_writeup"), MethodConfig("naive")]  # 2 methods x 2 seeds


def numbers(folder: Path) -> dict[str, dict]:
    """Every result file's content but its timings and the progress-bar flag."""
    out = {}
    for path in record_paths(folder):
        record = decode_record(path)
        for key in TIMING_KEYS:
            record.pop(key, None)
        record["spec"].pop("show_progress")
        out[path.name] = record
    return out


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {f"{p.parent.name}/{p.name}": (p.read_bytes(), p.stat().st_mtime_ns)
            for folder in ("runs", "single_task") for p in record_paths(out / folder)}


@pytest.fixture(scope="module")
def one_thread():
    """Sequential and worker runs all on one torch thread (identical float sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("sequential") / "out"
    summary = run_experiment(tiny_config(out, GRID), executor=sequential_executor)
    assert summary["n_runs"] == 4 and summary["failed_runs"] == []
    return out


@pytest.fixture(scope="module")
def pool():
    """Two local workers for the module, forked from the shared fork server (torch and
    Avalanche are imported once, also for the workers that replace dead ones)."""
    register_test_methods()
    forkserver_context()
    with LocalProcessExecutor(workers=2, threads_per_worker=1, setup=register_test_methods,
                              start_method="forkserver") as ex:
        yield ex
    for name in ("test_raises", "test_dies"):
        REGISTRY.pop(name, None)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Ray workers cannot import this test module: ship its functions (the setup) by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def test_local_workers_give_the_sequential_results(sequential, pool, tmp_path):
    summary = run_experiment(tiny_config(tmp_path / "out", GRID), executor=pool)
    assert summary["failed_runs"] == []
    for folder, count in (("runs", 4), ("single_task", 10)):  # 10 = 2 seeds x 5 pairs, once
        expected = numbers(sequential / folder)
        assert len(expected) == count
        assert numbers(tmp_path / "out" / folder) == expected
    assert not (tmp_path / "out" / "failed").exists()


def test_ray_gives_the_sequential_results_and_records_failures(sequential, ray_session, tmp_path):
    register_test_methods()
    executor = RayExecutor(cpus_per_run=1, setup=register_test_methods)
    summary = run_experiment(tiny_config(tmp_path / "out", GRID), executor=executor)
    assert summary["failed_runs"] == []
    for folder in ("runs", "single_task"):
        assert numbers(tmp_path / "out" / folder) == numbers(sequential / folder)
    # a run raising inside a Ray task is recorded and retried; the others finish
    out = tmp_path / "failing"
    with pytest.warns(UserWarning, match="1 run\\(s\\) failed twice"):
        summary = run_experiment(tiny_config(out, [MethodConfig("test_raises"), MethodConfig("naive")],
                                             seeds=[0]), executor=executor)
    failure_file = out / "failed" / "final__test_raises__default__seed0__order01234.json"
    failure, failed_at = json.loads(failure_file.read_text()), failure_file.stat().st_mtime_ns
    assert failure["error"] == "RuntimeError: test-only failure before experience 2"
    assert failure["attempts"] == 2 and not failure["worker_lost"]
    assert summary["n_runs"] == 1 and (out / "runs" / "final__naive__default__seed0__order01234.json.gz").is_file()
    # a failure file is not a result: the next invocation retries that run only
    before = snapshot(out)
    with pytest.warns(UserWarning, match="1 run\\(s\\) failed twice"):
        run_experiment(tiny_config(out, [MethodConfig("test_raises"), MethodConfig("naive")], seeds=[0]),
                       executor=executor)
    assert snapshot(out) == before
    again = json.loads((out / "failed" / "final__test_raises__default__seed0__order01234.json").read_text())
    assert again["attempts"] == 2 and again["time"] >= failure["time"]
    assert (out / "failed" / "final__test_raises__default__seed0__order01234.json").stat().st_mtime_ns > failed_at
    executor.close()
    assert ray_session.is_initialized()  # a session it did not start is left running


def test_failed_runs_are_recorded_retried_and_do_not_stop_the_grid(pool, tmp_path):
    out = tmp_path / "out"
    config = tiny_config(out, [MethodConfig("test_raises"), MethodConfig("test_dies"),
                               MethodConfig("naive")], seeds=[0])
    with pytest.warns(UserWarning, match="2 run\\(s\\) failed twice"):
        summary = run_experiment(config, executor=pool)
    raised = json.loads((out / "failed" / "final__test_raises__default__seed0__order01234.json").read_text())
    assert raised["error"] == "RuntimeError: test-only failure before experience 2"
    assert "before_training_exp" in raised["traceback"] and raised["attempts"] == 2
    died = json.loads((out / "failed" / "final__test_dies__default__seed0__order01234.json").read_text())
    assert died["worker_lost"] and "exit code 3" in died["error"] and died["attempts"] == 2
    assert sorted(summary["failed_runs"]) == ["final__test_dies__default__seed0__order01234",
                                              "final__test_raises__default__seed0__order01234"]
    # the rest of the grid finished and was reported; failures are not results
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["final__naive__default__seed0__order01234.json.gz"]
    assert len(record_paths(out / "single_task")) == 5
    assert "| Naive (fine-tuning) |" in (out / "table.md").read_text()
    assert "Raises" not in (out / "table.md").read_text()


def test_a_run_that_fails_once_is_retried_and_its_failure_file_removed(tmp_path):
    calls = []

    class FailsOnce(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            calls.append(strategy.clock.train_exp_counter)
            if len(calls) == 1:
                raise ValueError("transient")

    register(MethodEntry("test_flaky", "Flaky (test)", "naive", lambda p, n: [FailsOnce()]))
    try:
        out = tmp_path / "out"
        summary = run_experiment(tiny_config(out, [MethodConfig("test_flaky")], seeds=[0]))
    finally:
        REGISTRY.pop("test_flaky")
    assert summary["failed_runs"] == [] and summary["n_runs"] == 1
    assert calls == [0, 0, 1, 2, 3, 4]  # failed at once, then one complete retry
    assert not list((out / "failed").glob("*.json"))


def _session_processes(sid: int) -> list[int]:
    """Live processes of a session (the driver started its workers inside it)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _gone(sid: int, timeout: float) -> bool:
    """Whether every process of the session ends within ``timeout`` seconds (workers,
    multiprocessing's resource tracker)."""
    deadline = time.monotonic() + timeout
    while _session_processes(sid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_for(folder: Path, count: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(record_paths(folder)) < count:
        assert process.poll() is None, "the grid ended before it could be interrupted"
        assert time.monotonic() < deadline, "the grid made no progress"
        time.sleep(0.02)


@pytest.mark.slow
def test_ctrl_c_and_killed_driver_resume_without_repeating_runs(pool, tmp_path):
    config = ExperimentConfig(benchmark="split_digits", epochs=1, batch_size=32, seeds=[0, 1],
                              methods=[MethodConfig("alpha_mas_writeup", sweep={"lambda_multiplier": [1.0, 2.0, 3.0]}),
                                       MethodConfig("naive"), MethodConfig("mas")],
                              output_dir=str(tmp_path / "out"))  # 10 runs of ~0.6 s + 10 single-task
    config.save(tmp_path / "grid.yaml")
    out, runs = tmp_path / "out", tmp_path / "out" / "runs"
    args = ["--config", str(tmp_path / "grid.yaml"), "--threads", "1"]
    command = [sys.executable, "-m", "alpha_mas_avalanche.cli", *args]

    # Ctrl-C, runs in the driver (workers, which would find their pipe closed as below,
    # are left to the SIGKILL case): the terminal sends SIGINT to the whole foreground
    # process group. A test run started in the background (CI scripts, nohup) inherits
    # SIGINT ignored: restore it
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(runs, 2, process)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted; every finished run is kept" in err
    assert "Resume with the same command:\n  compare-baselines " + " ".join(args) in err
    assert _gone(process.pid, 10)  # nothing of it keeps running
    interrupted = snapshot(out)
    assert 2 <= len([k for k in interrupted if k.startswith("runs/")]) < 10

    # SIGTERM of the driver alone (kill, a cluster's pre-emption): stopped as by Ctrl-C, its
    # two workers' runs in flight abandoned
    process = subprocess.Popen([*command, "--workers", "2"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(runs, len(record_paths(runs)) + 1, process)
    process.terminate()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; every finished run is kept" in err
    assert _gone(process.pid, 10)
    assert all(value == snapshot(out)[name] for name, value in interrupted.items())
    interrupted = snapshot(out)

    # SIGKILL of the driver alone: its two workers notice and exit; nothing is half-written
    process = subprocess.Popen([*command, "--workers", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(runs, len(record_paths(runs)) + 2, process)
    process.kill()
    process.wait()
    killed = snapshot(out)
    assert len([k for k in killed if k.startswith("runs/")]) < 10, "the grid must be killed mid-way"
    assert all(killed[name] == value for name, value in interrupted.items())
    assert _gone(process.pid, 60)  # a worker finishes its run, finds the driver gone, exits

    summary = run_experiment(ExperimentConfig.load(tmp_path / "grid.yaml"), executor=pool)
    final = snapshot(out)
    assert summary["n_runs"] == 10 and summary["failed_runs"] == []
    assert len(final) == 10 + 10
    assert all(final[name] == value for name, value in killed.items())  # not re-run: same mtime
    assert not [p for folder in ("runs", "single_task") for p in (out / folder).iterdir()
                if not p.name.endswith(".json.gz")]


def test_cli_executor_options_are_checked(tmp_path, capsys, monkeypatch):
    common = ["--quick", "--output", str(tmp_path / "o")]
    assert main([*common, "--cpus-per-run", "2"]) == 2
    assert "--cpus-per-run: only with --executor ray" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--workers", "2"]) == 2
    assert "--workers: only with --executor local" in capsys.readouterr().err
    assert main([*common, "--executor", "ray", "--gpus-per-run", "0.5"]) == 2
    assert "add --device cuda" in capsys.readouterr().err
    assert main([*common, "--workers", "0"]) == 2
    assert "workers: expected an int >= 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*common, "--executor", "ray"]) == 2
    assert "pip install 'alpha-mas-avalanche[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran
