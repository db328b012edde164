"""Mixed-precision training for Avalanche strategies: forward and loss under
``torch.autocast``, backward through a ``torch.amp.GradScaler`` for float16.

Avalanche 0.6 has no mixed precision of its own. Wrapping ``strategy.train(...)`` in
``torch.autocast`` is not the same: autocast caches the half-precision copies of the
weights for as long as its region lasts, so every step after the first would run the
forward with the weights of the first. :func:`amp_strategy` puts autocast where torch's
AMP recipe puts it, around each forward and loss only.
"""
from __future__ import annotations

import torch

#: ``--amp`` values and the autocast dtype each stands for (None: full precision).
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class AmpMixin:
    """Mixed precision for an Avalanche SGD strategy (see :func:`amp_strategy`).

    Args:
        amp: ``"off"``, ``"bf16"`` or ``"fp16"``; the autocast dtype of forward and loss.
        scaler: the ``GradScaler`` for ``"fp16"`` (default: a new one on the strategy's
            device type); ``"bf16"`` needs none (bfloat16 has float32's range).
    """

    def __init__(self, *, amp: str = "off", scaler: torch.amp.GradScaler | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp: expected one of {sorted(AMP_DTYPES)}, got {amp!r}")
        self.amp = amp
        device_type = torch.device(self.device).type
        if scaler is None and amp == "fp16":
            scaler = torch.amp.GradScaler(device_type)
        self.scaler = scaler
        self._autocast_type = device_type

    def _autocast(self) -> torch.autocast:
        dtype = AMP_DTYPES[self.amp]
        return torch.autocast(self._autocast_type, dtype=dtype or torch.float32,
                              enabled=dtype is not None)

    def forward(self):
        with self._autocast():
            return super().forward()

    def criterion(self):
        with self._autocast():
            return super().criterion()

    def backward(self):
        if self.scaler is None:
            return super().backward()
        self.scaler.scale(self.loss).backward()

    def optimizer_step(self):
        if self.scaler is None:
            return super().optimizer_step()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def amp_strategy(strategy_cls: type) -> type:
    """``strategy_cls`` (e.g. Avalanche's ``Naive``) with :class:`AmpMixin`: construct it
    with the usual keyword arguments plus ``amp="bf16"`` / ``"fp16"`` (and optionally
    ``scaler``)."""
    return type(f"Amp{strategy_cls.__name__}", (AmpMixin, strategy_cls), {})
