"""Precision helpers: the dtype sums are accumulated in, autocast and TF32 switched off.

Importance, Fisher information and the SI path integral are accumulated in float32 (float64
for float64 parameters) whatever the autocast state or the parameters' own precision.
No Avalanche here.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor


def accumulation_dtype(tensor: Tensor) -> torch.dtype:
    """float64 for float64 tensors; float32 for float32, float16 and bfloat16 ones."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def zero_sums(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Zero accumulators shaped like ``params``, in their :func:`accumulation_dtype`."""
    return {n: torch.zeros_like(p, dtype=accumulation_dtype(p)) for n, p in params.items()}


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast disabled on ``device``'s type (a no-op where torch has none)."""
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know
        return contextlib.nullcontext()


def _fp32_precision_switches() -> list[tuple[object, str]]:
    """The ``(backend, attribute)`` switches that let float32 math run in reduced precision
    (TF32, bfloat16): torch's ``fp32_precision`` where this torch has it, else the older
    ``allow_tf32`` flags."""
    backends = torch.backends
    newer = [getattr(getattr(backends, b, None), op, None)
             for b in ("cudnn", "mkldnn") for op in ("conv", "matmul", "rnn")]
    newer.append(getattr(backends.cuda, "matmul", None))
    switches = [(b, "fp32_precision") for b in newer if hasattr(b, "fp32_precision")]
    if switches:
        return switches
    return [(backends.cuda.matmul, "allow_tf32"), (backends.cudnn, "allow_tf32")]


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off on ``device``, and float32 math in full precision (no TF32 or bfloat16
    in matmuls and convolutions, on CUDA and oneDNN); the settings are restored after."""
    switches = _fp32_precision_switches()
    saved = [getattr(backend, attr) for backend, attr in switches]
    try:
        for backend, attr in switches:
            setattr(backend, attr, "ieee" if attr == "fp32_precision" else False)
        with autocast_off(device):
            yield
    finally:
        for (backend, attr), value in zip(switches, saved):
            setattr(backend, attr, value)
