"""The hooks shared by plugins whose penalty is a quadratic around anchors (SI, L2).

The penalty object has ``num_tasks`` and ``add_gradient_(params) -> value``, as
:class:`~alpha_mas_avalanche.penalty.ConsolidatedPenalty` and
:class:`~alpha_mas_avalanche.synaptic.SynapticIntelligence` do. Its gradient is added to
``.grad`` after ``backward`` (no autograd graph); the logged loss includes its value.
"""
from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin

from alpha_mas_avalanche.importance import trainable_parameters


class QuadraticPenaltyPlugin(SupervisedPlugin):
    """Base class: adds ``penalty``'s gradient after every backward once a task is stored."""

    def __init__(self, penalty: Any) -> None:
        super().__init__()
        self.penalty = penalty
        self.last_penalty = 0.0
        self._params: dict[str, torch.nn.Parameter] | None = None

    def params(self, strategy) -> dict[str, torch.nn.Parameter]:
        """The trainable parameters, cached per experience (after model adaptation)."""
        if self._params is None:
            self._params = trainable_parameters(strategy.model)
        return self._params

    def before_training_exp(self, strategy, **kwargs) -> None:
        self._params = trainable_parameters(strategy.model)

    def after_backward(self, strategy, **kwargs) -> None:
        if self.penalty.num_tasks == 0:
            return
        self.last_penalty = self.penalty.add_gradient_(self.params(strategy))
        strategy.loss = strategy.loss.detach() + self.last_penalty

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._params = None

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "last_penalty": self.last_penalty}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.last_penalty = float(state["last_penalty"])
