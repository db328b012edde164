"""The base of every plugin here: state keyed by the unwrapped model's parameter names,
the task label of an experience, reductions across data-parallel ranks, the importance pass
out of the caller's autocast region, and the step's penalty kept for the metric collectors
without a host synchronisation."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from alpha_mas_avalanche import distributed
from alpha_mas_avalanche.parameters import match_names, model_device, unwrap
from alpha_mas_avalanche.precision import autocast_off


class AutocastRegionWarning(UserWarning):
    """``strategy.train`` runs inside a ``torch.autocast`` region (see ``amp_strategy``)."""


def experience_task_label(model: nn.Module, experience: Any, who: str) -> int | None:
    """The head an experience trains: its task label for a multi-head model (an Avalanche
    ``MultiTaskModule``, under any wrapper), else None."""
    if not isinstance(unwrap(model), MultiTaskModule):
        return None
    labels = list(experience.task_labels)
    if len(labels) != 1:
        raise ValueError(
            f"{who}: experience {experience.current_experience} has task labels {labels}; "
            "a multi-head model needs one task label per experience"
        )
    return int(labels[0])


class ContinualPlugin(SupervisedPlugin, supports_distributed=True):
    """Base class of AlphaMAS, SI, L2, EBLL and IMM.

    - State is keyed by the parameter names of the module inside DDP / DataParallel /
      ``torch.compile`` (:func:`~alpha_mas_avalanche.parameters.unwrap`). After
      :meth:`load_state_dict`, the first experience (or ``consolidate``) matches the
      stored names to the model's, dropping wrapper prefixes, and raises a ValueError
      naming any name that matches no parameter.
    - In a ``torch.distributed`` job every rank ends each experience with the same state:
      importance sums are added over the ranks (:meth:`reduce`), merged weights broadcast.
    - The importance pass runs in :meth:`importance_region`: autocast off, so a
      ``strategy.train`` inside ``torch.autocast`` still gets float32 importance at the
      current weights (with an :class:`AutocastRegionWarning`: the training steps there
      reuse autocast's cast copies of the weights).
    - ``last_penalty_tensor`` is the loss term the plugin added at the last training step,
      kept on the device; ``last_penalty`` reads it (a host synchronisation).
    """

    def __init_subclass__(cls, supports_distributed: bool = True, **kwargs) -> None:
        # Avalanche resets the flag to False in every subclass that does not pass it
        super().__init_subclass__(supports_distributed=supports_distributed, **kwargs)

    def __init__(self) -> None:
        super().__init__()
        self._last_penalty: Tensor | float = 0.0
        self._names_unchecked = False
        self._warned_autocast = False

    # -------------------------------------------------------------- read-only
    @property
    def last_penalty(self) -> float:
        """The penalty at the last training step (0.0 before any); reading it synchronises."""
        return float(self._last_penalty)

    @property
    def last_penalty_tensor(self) -> Tensor:
        """The penalty at the last training step as a 0-d tensor (no synchronisation)."""
        value = self._last_penalty
        return value if isinstance(value, Tensor) else torch.tensor(value)

    @property
    def who(self) -> str:
        return type(self).__name__

    def task_label(self, strategy) -> int | None:
        """The head the strategy's current experience trains (None for one head)."""
        return experience_task_label(strategy.model, strategy.experience, self.who)

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy, **kwargs) -> None:
        self.bind(strategy.model)
        device = model_device(strategy.model)
        if torch.is_autocast_enabled(device.type) and not self._warned_autocast:
            self._warned_autocast = True
            warnings.warn(
                f"{self.who}: strategy.train runs inside torch.autocast. The plugin computes "
                "its importance with autocast off (float32, at the current weights), but "
                "autocast keeps its cast copies of the weights for the whole region, so the "
                "training steps run on stale weights; put autocast around each forward and "
                "loss instead (alpha_mas_avalanche.amp.amp_strategy)",
                AutocastRegionWarning, stacklevel=3,
            )

    # ------------------------------------------------------------- plumbing
    def bind(self, model: nn.Module) -> None:
        """Match the names of a loaded state to ``model``'s parameters (once per load)."""
        if not self._names_unchecked:
            return
        tables = self.parameter_tables()
        stored = set().union(*tables) if tables else set()
        mapping = match_names(stored, model, f"{self.who}.load_state_dict")
        for table in tables:
            renamed = {mapping[n]: table[n] for n in table} if isinstance(table, dict) \
                else {mapping[n] for n in table}
            table.clear()
            table.update(renamed)
        self._names_unchecked = False

    def parameter_tables(self) -> list[dict[str, Any] | set[str]]:
        """The state's tables keyed by parameter name (renamed in place by :meth:`bind`)."""
        return []

    def state_loaded(self) -> None:
        """Subclasses call this at the end of ``load_state_dict``."""
        self._names_unchecked = True

    @staticmethod
    def importance_region(model: nn.Module) -> contextlib.AbstractContextManager:
        """Autocast off on the model's device: importance at the current float32 weights."""
        return autocast_off(model_device(model))

    @staticmethod
    def reduce(sums: Mapping[str, Tensor], count: int) -> tuple[dict[str, Tensor], int]:
        """``sums`` and ``count`` added over the ranks (as they are in one process)."""
        return distributed.all_reduce_sums(sums, count)
