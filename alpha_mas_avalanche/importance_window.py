"""Exact per-sample MAS importance accumulated over the training mini-batches of the last
``k`` epochs (AlphaMAS's ``importance_from="last_epochs"``). No Avalanche here.

One :class:`~alpha_mas_avalanche.per_sample.AbsGradientSums` per experience holds the layer
plan and hooks, built once; whether samples interact is decided before training, on a probe
batch. Adding a mini-batch then never reads a value back to the host.
"""
from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from alpha_mas_avalanche.importance import forward_functional
from alpha_mas_avalanche.per_sample import AbsGradientSums, Sums


class ImportanceWindow:
    """Rolling per-epoch sums of ``|d ||F(x)||^2 / d theta|`` over the mini-batches seen.

    Call :meth:`start` before an experience, :meth:`add` on every training mini-batch,
    :meth:`finish` at its end (the sums over the samples of the last ``epochs`` epochs
    that ran, and their count). Each mini-batch is evaluated in eval mode (the model's mode is restored),
    without touching ``.grad``, BatchNorm statistics or the RNG.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self._window: deque[list] = deque()  # [sums, count] per epoch
        self._epoch: int | None = None
        self._sums: AbsGradientSums | None = None
        self._model: nn.Module | None = None

    def start(self, model: nn.Module, params: dict[str, Tensor], task_label: int | None,
              probe: Tensor | None) -> None:
        """Build the plan for ``model``'s ``params``; check on ``probe`` (inputs, or None)
        whether samples interact."""
        self.close()
        self._window.clear()
        self._epoch = None
        self._model = model
        self._sums = AbsGradientSums(
            model, params,
            run=lambda x: model(x) if task_label is None else model(x, task_label),
            run_functional=lambda t, x: forward_functional(model, t, x, task_label),
            max_chunk=1,
        )
        if probe is not None:
            with self._eval_mode():
                self._sums.check_independence(probe)

    def add(self, x: Tensor, epoch: int) -> None:
        """Add the mini-batch ``x`` of training epoch ``epoch``."""
        if epoch != self._epoch:  # a new epoch: the oldest leaves the window
            self._window.append([self._sums.zeros(), 0])
            if len(self._window) > self.epochs:
                self._window.popleft()
            self._epoch = epoch
        self._sums.max_chunk = x.shape[0]
        with self._eval_mode(), torch.enable_grad():
            self._sums.add(x, self._window[-1][0])
        self._window[-1][1] += x.shape[0]

    def finish(self) -> tuple[Sums, int]:
        """``(sums over the window's samples, their count)`` (zeros and 0 if no sample was
        added); closes."""
        count = sum(c for _, c in self._window)
        importance: Sums = self._sums.zeros() if self._sums is not None else {}
        for sums, _ in self._window:
            for name, s in sums.items():
                importance[name] += s
        self._window.clear()
        self.close()
        return importance, count

    def close(self) -> None:
        """Remove the forward hooks."""
        if self._sums is not None:
            self._sums.close()
            self._sums = None

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self._model.training
        self._model.eval()
        try:
            yield
        finally:
            self._model.train(was_training)
