"""Counting host synchronisations: calls of ``Tensor.item``, ``__float__``, ``__int__``,
``__bool__``, ``tolist``, ``numpy`` and ``cpu`` made from this package's own frames, between
the ``before_training_iteration`` of the first plugin and the ``after_training_iteration``
of the last (the training iterations, not the epoch or experience hooks)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin

import alpha_mas_avalanche

PACKAGE = str(Path(alpha_mas_avalanche.__file__).resolve().parent)
SYNCING = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu")


class SyncCounter:
    """``start()`` / ``stop()`` patch and restore the methods; ``counts`` is per
    ``(method, file:line)`` of the package frame that called it, while ``active``."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.active = False
        self._saved: dict[str, object] = {}

    def _wrap(self, name: str, real):
        def wrapper(tensor, *args, **kwargs):
            if self.active:
                frame = sys._getframe(1)
                if frame.f_code.co_filename.startswith(PACKAGE):
                    where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                    self.counts[(name, where)] += 1
            return real(tensor, *args, **kwargs)
        return wrapper

    def start(self) -> None:
        for name in SYNCING:
            real = getattr(torch.Tensor, name)
            self._saved[name] = torch.Tensor.__dict__.get(name, real)
            setattr(torch.Tensor, name, self._wrap(name, real))

    def stop(self) -> None:
        for name, real in self._saved.items():
            setattr(torch.Tensor, name, real)
        self._saved.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class CountFrom(SupervisedPlugin):
    """First in the plugin list: counting on at each training iteration of ``experience``."""

    def __init__(self, counter: SyncCounter, experience: int) -> None:
        super().__init__()
        self.counter, self.experience = counter, experience

    def before_training_iteration(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.experience:
            self.counter.active = True


class CountUntil(SupervisedPlugin):
    """Last in the plugin list: counting off at the end of each training iteration."""

    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def after_training_iteration(self, strategy, **kwargs):
        self.counter.active = False
