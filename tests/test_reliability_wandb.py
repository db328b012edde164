"""W&B unavailable or failing, with the real ``wandb`` package and real failing conditions:
online mode without a login, online mode without a reachable server, a W&B folder that
cannot be created, a full disk. The experiment goes on, every result is written locally,
exactly one warning says what happened, and every W&B run that was started is finished."""
from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest

from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from wandb_records import offline_records
from alpha_mas_avalanche.experiment.wandb_logging import WandbSession
from alpha_mas_avalanche.experiment.records import load_records

TINY = dict(benchmark="split_digits", epochs=1, batch_size=32, train_samples_per_task=40,
            eval_samples_per_task=30, methods=[MethodConfig("naive")], seeds=[0])

pytestmark = pytest.mark.slow  # trains on real data or runs grids


@pytest.fixture
def fresh_wandb(tmp_path, monkeypatch):
    """No credentials anywhere, W&B's process-wide settings re-read from this environment."""
    import wandb

    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    wandb.teardown()
    yield
    wandb.teardown()


def run_and_collect(config: ExperimentConfig) -> tuple[dict, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_experiment(config)
    return summary, [str(w.message) for w in caught if "W&B" in str(w.message)]


def assert_local_results(config: ExperimentConfig, summary: dict) -> None:
    out = Path(config.output_dir)
    runs = load_records(out / "runs")
    assert summary["n_runs"] == len(runs) == 1
    record = runs[0]
    assert 0 <= record["final_avg_acc"] <= 1
    assert "| Naive (fine-tuning) |" in (out / "table.md").read_text()


def test_online_without_login(tmp_path, fresh_wandb):
    config = ExperimentConfig(**TINY, wandb="online", output_dir=str(tmp_path / "out"))
    summary, messages = run_and_collect(config)
    assert len(messages) == 1, messages
    assert "W&B logging failed" in messages[0] and "No API key configured" in messages[0]
    assert_local_results(config, summary)


def test_online_without_network(tmp_path, fresh_wandb, monkeypatch):
    # a key, but the server cannot be reached (closed local port): one init_timeout, once
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    config = ExperimentConfig(**{**TINY, "seeds": [0, 1]}, wandb="online",
                              output_dir=str(tmp_path / "out"))
    summary, messages = run_and_collect(config)
    assert len(messages) == 1, messages
    assert "CommError" in messages[0] or "connection refused" in messages[0]
    assert summary["n_runs"] == 2  # the second run did not wait for W&B again


def test_wandb_folder_cannot_be_created(tmp_path, fresh_wandb):
    out = tmp_path / "out"
    out.mkdir()
    (out / "wandb").write_text("a file where W&B's folder must go")
    config = ExperimentConfig(**TINY, wandb="offline", output_dir=str(out))
    fallback = set(Path(tempfile.gettempdir()).glob("wandb/offline-run-*"))
    summary, messages = run_and_collect(config)
    assert len(messages) == 1 and "FileExistsError" in messages[0], messages
    assert_local_results(config, summary)
    # W&B did not silently fall back to a folder in /tmp
    assert set(Path(tempfile.gettempdir()).glob("wandb/offline-run-*")) == fallback


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs mounted at ``<tmp>/out/wandb`` and filled (needs mount rights)."""
    folder = tmp_path / "out" / "wandb"
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root / CAP_SYS_ADMIN")
    try:
        try:
            with open(folder / "filler", "wb") as handle:
                while True:
                    handle.write(bytes(4096))
                    handle.flush()
        except OSError:  # ENOSPC: the disk is full
            pass
        yield tmp_path / "out"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_under_the_wandb_folder(full_disk, fresh_wandb):
    config = ExperimentConfig(**TINY, wandb="offline", output_dir=str(full_disk))
    summary, messages = run_and_collect(config)
    assert len(messages) == 1 and "No space left on device" in messages[0], messages
    assert_local_results(config, summary)


def record_types(run_folder: Path) -> list[str]:
    """The record types of an offline run's transaction log."""
    return [record.WhichOneof("record_type") for record in offline_records(run_folder)]


def test_run_is_finished_when_logging_raises(tmp_path, fresh_wandb):
    config = ExperimentConfig(**TINY, wandb="offline", output_dir=str(tmp_path / "out"))
    session = WandbSession(config)
    record = {"run_id": "broken", "method": "naive", "label": "Naive", "params": {}, "seed": 0,
              "task_order": [0, 1, 2, 3, 4], "epochs": [],
              "acc_matrix": [[0.5, 0.5], [0.5]]}  # ragged: wandb.Table raises
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session.log_run(None, record)
        session.log_run(None, {**record, "run_id": "not-attempted"})
    messages = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(messages) == 1 and "run broken" in messages[0]
    folders = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(folders) == 1  # logging stopped after the failure
    kinds = record_types(folders[0])
    assert "run" in kinds and "exit" in kinds  # started, then finished
    assert os.listdir(tmp_path / "out" / "wandb")  # nothing else removed
