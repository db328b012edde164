"""Where and how runs compute: the ``device`` / ``amp`` / ``deterministic`` settings checked,
the GPU environment recorded, data-loader options, local workers per GPU, determinism.

torch is imported inside the functions: loading a config must stay fast.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Any

DEVICE_TYPES = ("cpu", "cuda", "mps")
AMP_MODES = ("off", "bf16", "fp16")
#: Local workers per GPU with ``--device cuda`` (see :func:`default_local_workers`).
RUNS_PER_GPU = 4
#: GPU memory one run is budgeted (CUDA context about 0.5 GiB, VGG-16 on 32x32 CIFAR at
#: batch 128 in bfloat16 well under 1 GiB, the per-sample importance pass's 128 MiB chunks).
GIB_PER_RUN = 2
#: Data-loading processes per run on CUDA (per-sample CIFAR augmentations feed the GPU).
CUDA_LOADER_WORKERS = 2
ACCEPTED = "cpu, cuda, cuda:<index> or mps"


def device_type(device: str) -> str:
    """``"cuda"`` for ``"cuda:1"``; the type part of a device string."""
    return device.split(":", 1)[0]


def check_device(name: str, value: Any) -> str:
    """``value`` is ``cpu``, ``mps`` or ``cuda`` with an optional ``:<index>`` (checked
    without importing torch; whether this machine has it: :func:`check_device_available`)."""
    if not isinstance(value, str) or not re.fullmatch(r"(cpu|mps|cuda)(:\d+)?", value):
        raise ValueError(f"{name}: expected {ACCEPTED}, got {value!r}")
    return value


#: where a GPU driver torch could use shows itself on Linux: NVIDIA's kernel module, AMD's
#: ROCm device (torch's "cuda" on ROCm builds)
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/kfd")


def missing_device_reason(value: str) -> str | None:
    """Why this machine cannot have device ``value``, found without importing torch (Linux
    without a GPU driver, MPS off macOS); None where only torch can tell."""
    import ctypes.util
    import sys

    kind = device_type(value)
    if kind == "mps" and sys.platform != "darwin":
        return "MPS exists on Apple machines only"
    if (kind == "cuda" and sys.platform.startswith("linux")
            and not any(os.path.exists(path) for path in GPU_DRIVER_PATHS)
            and ctypes.util.find_library("cuda") is None):
        return ("this machine has no GPU driver (no /proc/driver/nvidia, /dev/kfd or "
                "libcuda), so torch can see no CUDA device; use cpu, or run on a machine "
                "with a GPU")
    return None


def check_device_available(name: str, value: str) -> None:
    """Raise ValueError (naming ``name``) if this machine cannot run on ``value``."""
    import torch

    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}: {value!r}, but torch {torch.__version__} sees no CUDA device on this "
                f"machine (CUDA build: {torch.version.cuda or 'none'}); use cpu, or run on a "
                "machine with a GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}: {value!r}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}: {value!r}, but torch sees no MPS device on this machine")


def gpu_environment() -> dict[str, Any]:
    """GPU names and memory, CUDA build and cuDNN versions, the driver (``nvidia-smi``);
    on a machine without CUDA only the CUDA build torch was compiled for."""
    import torch

    available = torch.cuda.is_available()
    info: dict[str, Any] = {
        "cuda_available": available, "cuda_build": torch.version.cuda,
        # cuDNN is loaded only where it can run (loading it costs seconds)
        "cudnn": torch.backends.cudnn.version() if available else None,
        "gpus": [], "driver": None,
    }
    if available:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append({"name": props.name, "memory_gib": props.total_memory / 2**30,
                                 "capability": f"{props.major}.{props.minor}"})
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=True).stdout.split()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    return info


def loader_options(device: str) -> dict[str, Any]:
    """Avalanche ``train``/``eval`` data-loader options: on CUDA, worker processes and pinned
    memory; on the CPU none (the committed CPU results ran with none)."""
    if device_type(device) != "cuda":
        return {"num_workers": 0}
    return {"num_workers": CUDA_LOADER_WORKERS, "pin_memory": True,
            "persistent_workers": False}


def default_local_workers(device: str, cpus: int) -> int:
    """Local worker processes for ``device``: one per CPU on the CPU; on CUDA
    ``RUNS_PER_GPU`` per GPU (one small run leaves a GPU mostly idle between kernel
    launches; a few overlap), at most free memory / ``GIB_PER_RUN`` per GPU and at most
    one per ``CUDA_LOADER_WORKERS + 1`` CPUs (each run feeds its GPU from its CPU and its
    loader processes), and at least one."""
    if device_type(device) != "cuda":
        return cpus
    import torch

    indices = (range(torch.cuda.device_count()) if torch.device(device).index is None
               else [torch.device(device).index])
    per_gpu = []
    for index in indices:
        free, _ = torch.cuda.mem_get_info(index)
        per_gpu.append(min(RUNS_PER_GPU, int(free / 2**30 // GIB_PER_RUN)))
    return max(1, min(sum(per_gpu), cpus // (CUDA_LOADER_WORKERS + 1)))


def worker_device(device: str, worker: int, gpu_count: int) -> str:
    """The device worker ``worker`` runs on: ``cuda`` is spread as ``cuda:<worker mod
    gpu_count>``; an explicit ``cuda:i``, or any other device, is kept."""
    if device != "cuda" or gpu_count <= 1:
        return device
    return f"cuda:{worker % gpu_count}"


def configure_determinism(deterministic: bool) -> None:
    """With ``deterministic``: torch's deterministic algorithms (a warning where an op has
    none), cuDNN benchmarking off, cuBLAS's fixed workspace. Call before any CUDA work."""
    if not deterministic:
        return
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
