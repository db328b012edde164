"""Result files: run records written atomically and read back (resume), failure records,
the resumability check of a results folder and the environment a grid ran in."""
from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from alpha_mas_avalanche.experiment.atomic import write_bytes_atomic, write_text_atomic
from alpha_mas_avalanche.experiment.records import (
    decode_record,
    encode_record,
    existing_record_file,
    record_file,
    run_id_of,
)
from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.devices import device_type, gpu_environment

if TYPE_CHECKING:
    from alpha_mas_avalanche.experiment.specs import RunSpec

RESULT_FORMAT = 1
#: Config keys that may change between a run and its resumption (``device`` only within
#: its type: a grid never mixes CPU and GPU runs; a changed ``grid_extensions`` only grows
#: or stops growing the validation grids, and the final runs follow the new choice; every
#: run's id names its method, hyperparameters, seed and task order, so methods, grids and
#: seeds may be added: the finished runs they share are kept).
RESUMABLE_KEYS = ("output_dir", "wandb", "wandb_project", "data_root", "device", "name",
                  "grid_extensions", "methods", "seeds", "selection_seeds", "rerun_uncommitted")


@dataclass
class RunFailure:
    """A run that raised (``error``: one line, ``traceback``) or whose worker was lost;
    ``config_error``: it cannot be built from its config (never retried)."""

    error: str
    traceback: str = ""
    worker_lost: bool = False
    config_error: bool = False


def sanitize(value: Any) -> Any:
    """Recursively: non-finite floats -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, torch.Tensor):
        return sanitize(value.tolist())
    return value


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file + ``os.replace``)."""
    write_text_atomic(path, json.dumps(sanitize(data), indent=1, allow_nan=False))


def write_record(path: Path, data: Any) -> None:
    """Write a run's record atomically, compressed (:mod:`.records`)."""
    write_bytes_atomic(path, encode_record(sanitize(data)))


def read_record(path: Path) -> dict | None:
    """A finished run's record, or None if absent or unusable (then the run is repeated).
    ``path``: the record's file (an older results folder's plain ``.json`` is read too).

    A file that is not a complete record of this run (half-written or corrupt by a
    machine crash, empty, NaN/Infinity, another run's or another format's record) gives
    one warning naming it and what is wrong; it is overwritten when the run finishes."""
    path = existing_record_file(path.parent, run_id_of(path))
    if not path.is_file():
        return None
    problem = None
    try:
        record = decode_record(path)
    except (ValueError, OSError, EOFError) as err:  # JSON, gzip and truncation errors
        problem = f"unreadable ({type(err).__name__}: {err}; half-written or corrupt)"
    else:
        if not isinstance(record, dict):
            problem = f"not a run record (a JSON {type(record).__name__})"
        elif record.get("run_id") != run_id_of(path):
            problem = f"holds the result of run {record.get('run_id')!r}, not of this run"
        elif record.get("format") != RESULT_FORMAT:
            problem = (f"has result format {record.get('format')!r}, this version writes "
                       f"{RESULT_FORMAT}")
    if problem is not None:
        warnings.warn(f"result file {path}: {problem}; the run will be repeated and the "
                      "file replaced", stacklevel=2)
        return None
    return record


def spec_path(output_dir: Path, spec: RunSpec) -> Path:
    folder = "single_task" if spec.phase == "single_task" else "runs"
    return record_file(output_dir / folder, spec.run_id)


#: the paths of the repository that decide what a run computes (results/ and docs/ do not)
CODE_PATHS = ("alpha_mas_avalanche", "setup.cfg", "pyproject.toml", "constraints.txt")


def git_state(repo: Path, paths: tuple[str, ...] = ()) -> tuple[str | None, bool | None]:
    """``repo``'s HEAD commit and whether its work tree differs from it, within ``paths``
    where given (None, None outside git). Read only: ``--no-optional-locks`` keeps git status
    from refreshing the index, so a run killed meanwhile leaves no ``.git/index.lock`` behind."""
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), "status",
                                 "--porcelain", "--", *paths],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


#: the packages whose versions every run record carries
RECORD_PACKAGES = ("torch", "torchvision", "avalanche-lib", "numpy")


def run_provenance(device: str, amp: str) -> dict[str, Any]:
    """What made a run, for its record: the project's git ``commit`` and whether its tree was
    ``dirty``, the ``versions`` of :data:`RECORD_PACKAGES`, the ``device`` it trained on
    (the GPU's name on CUDA), its ``precision`` (autocast mode) and torch's intra-op
    ``threads`` (CPU sums in another order with another count)."""
    from importlib import metadata

    commit, dirty = git_state(Path(__file__).resolve().parents[2], CODE_PATHS)
    versions = {}
    for package in RECORD_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    where = device
    if device.startswith("cuda") and torch.cuda.is_available():
        where = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"commit": commit, "dirty": dirty, "versions": versions, "device": where,
            "precision": "fp32" if amp == "off" else amp, "threads": torch.get_num_threads()}


def environment_info() -> dict[str, Any]:
    """Package versions, Python, platform and the project's git commit."""
    from importlib import metadata

    versions = {}
    for package in ("alpha-mas-avalanche", "avalanche-lib", "torch", "torchvision", "numpy",
                    "scipy", "pandas", "matplotlib", "scikit-learn", "wandb", "pyyaml", "tqdm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit, dirty = git_state(Path(__file__).resolve().parents[2], CODE_PATHS)
    return {
        "packages": versions, "python": sys.version, "platform": platform.platform(),
        "git_commit": commit, "git_dirty": dirty, "torch_threads": torch.get_num_threads(),
        "command": sys.argv, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **gpu_environment(),
    }


def record_environment(output_dir: Path) -> None:
    """Write this invocation's :func:`environment_info` to ``environment.json``: the latest
    at the top level, every invocation so far (an older single-invocation file included)
    in ``invocations``."""
    path = output_dir / "environment.json"
    invocations = []
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (ValueError, OSError):
            previous = None
        if isinstance(previous, dict):
            invocations = previous.pop("invocations", None) or [previous]
    current = environment_info()
    write_json_atomic(path, {**current, "invocations": [*invocations, current]})


def check_resumable(output_dir: Path, config: ExperimentConfig) -> None:
    path = output_dir / "config.yaml"
    if not path.is_file():
        return
    previous = ExperimentConfig.load(path).to_dict()
    current = config.to_dict()
    changed = sorted(k for k in current if k not in RESUMABLE_KEYS and previous.get(k) != current[k])
    if device_type(previous["device"]) != device_type(current["device"]):
        changed.append("device type")  # cuda:0 -> cuda:1 resumes; cpu -> cuda does not
    if changed:
        raise ValueError(
            f"output_dir {output_dir} holds results of a different experiment (changed: "
            f"{changed}); use another --output folder, or the same config to resume"
        )


def failure_path(output_dir: Path, spec: RunSpec) -> Path:
    """Where a failed run's error is recorded (not a result: the next invocation re-runs it)."""
    return output_dir / "failed" / f"{spec.run_id}.json"


def record_failure(output_dir: Path, spec: RunSpec, failure: RunFailure, attempt: int) -> None:
    write_json_atomic(failure_path(output_dir, spec), {
        "run_id": spec.run_id, "failed": True, "error": failure.error,
        "traceback": failure.traceback, "worker_lost": failure.worker_lost,
        "config_error": failure.config_error,
        "attempts": attempt, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "spec": asdict(spec), "format": RESULT_FORMAT,
    })
