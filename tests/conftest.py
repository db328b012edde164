"""Shared fixtures: the data root, MNIST / CIFAR-10 availability, and the device the
device-aware tests run on.

A test that needs a dataset skips with the reason when it is absent, except under CI
(``CI=true``), where a missing dataset fails the run.

``pytest --device cuda`` (or ``cuda:1``, ``mps``) runs the device-aware plugin,
compatibility and harness tests (those taking the ``device`` fixture) on that device; the
default is ``cpu``. Tests that need CUDA take ``cuda_device`` and skip without it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_JPEG = Path("cifar10/lossy_jpeg_fallback/cifar10_jpeg_q75.npz")
CIFAR10_EXACT = Path("cifar10/exact_subset/cifar10_exact_subset.npz")


def data_root_path() -> Path:
    """``ALPHA_MAS_DATA_ROOT``, else ``../shared/data`` beside the repository; absolute, so
    that a test that changes its working directory still finds the files (README's root is
    relative)."""
    return Path(os.environ.get("ALPHA_MAS_DATA_ROOT", REPO.parent / "shared" / "data")).resolve()


def _require(paths: list[Path], what: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if not missing:
        return
    message = (f"{what} not found: missing {', '.join(missing)}. Set ALPHA_MAS_DATA_ROOT "
               "to the folder that holds it (see README, 'Data').")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu",
                     help="torch device for the device-aware tests: cpu (default), cuda, "
                          "cuda:<index>, mps")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--device")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise pytest.UsageError(f"--device: {err}; expected cpu, cuda, cuda:<index> or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device: cuda asked for, but torch sees no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise pytest.UsageError("--device: mps asked for, but torch sees no MPS device")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The device named by ``--device`` (default ``cpu``)."""
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def cuda_device(device: str) -> str:
    """The ``--device`` if it is a CUDA device, else the first CUDA device; skips without one."""
    if torch.device(device).type == "cuda":
        return device
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (run with --device cuda on a machine with one)")
    return "cuda"


@pytest.fixture(scope="session")
def data_root() -> Path:
    return data_root_path()


@pytest.fixture(scope="session")
def mnist_root(data_root: Path) -> Path:
    """Folder to pass as ``dataset_root`` to torchvision/Avalanche MNIST."""
    root = data_root / "mnist"
    _require([root / "MNIST" / "raw" / f for f in MNIST_FILES], "MNIST")
    return root


@pytest.fixture(scope="session")
def cifar10_jpeg_path(data_root: Path) -> Path:
    _require([data_root / CIFAR10_JPEG], "CIFAR-10 (JPEG q75 copy)")
    return data_root / CIFAR10_JPEG


@pytest.fixture(scope="session")
def cifar10_exact_path(data_root: Path) -> Path:
    _require([data_root / CIFAR10_EXACT], "CIFAR-10 exact subset")
    return data_root / CIFAR10_EXACT


@pytest.fixture(scope="session")
def naive_forgetting(device: str) -> float:
    """Naive's mean forgetting of the first digits task (``forgetting_helpers``), the bar
    the IMM and EBLL tests beat."""
    from forgetting_helpers import mean_first_task_forgetting

    return mean_first_task_forgetting(lambda: [], device)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Two threads at most: CI has 2 cores."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
