"""The hooks shared by plugins whose penalty is a quadratic around anchors (SI, L2).

The penalty object has ``num_tasks`` and ``add_gradient_(params, factor) -> value``, as
:class:`~alpha_mas_avalanche.penalty.ConsolidatedPenalty` and
:class:`~alpha_mas_avalanche.synaptic.SynapticIntelligence` do. Its gradient is added to
``.grad`` by a hook on the loss, which runs first thing in ``backward`` (no autograd graph
of the penalty), so every plugin that reads or projects gradients after ``backward``
(A-GEM, GEM) sees them with the penalty, whatever the plugin order. The logged loss
includes the penalty's value.
"""
from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin

from alpha_mas_avalanche.importance import trainable_parameters


class QuadraticPenaltyPlugin(SupervisedPlugin):
    """Base class: adds ``penalty``'s gradient in every backward once a task is stored."""

    def __init__(self, penalty: Any) -> None:
        super().__init__()
        self.penalty = penalty
        self.last_penalty = 0.0
        self._params: dict[str, torch.nn.Parameter] | None = None
        self._gradient_added = False

    def params(self, strategy) -> dict[str, torch.nn.Parameter]:
        """The trainable parameters, cached per experience (after model adaptation)."""
        if self._params is None:
            self._params = trainable_parameters(strategy.model)
        return self._params

    def before_training_exp(self, strategy, **kwargs) -> None:
        self._params = trainable_parameters(strategy.model)

    def before_backward(self, strategy, **kwargs) -> None:
        self._gradient_added = False
        loss = strategy.loss
        if self.penalty.num_tasks and isinstance(loss, torch.Tensor) and loss.requires_grad:
            params = self.params(strategy)
            loss.register_hook(lambda grad: self._add_gradient(params, float(grad)))

    def _add_gradient(self, params: dict[str, torch.nn.Parameter], factor: float) -> None:
        """Runs first thing in backward (``factor``: d(root)/d(loss), 1 unless rescaled)."""
        self.last_penalty = self.penalty.add_gradient_(params, factor=factor)
        self._gradient_added = True
        self.penalty_gradient_added(params)

    def penalty_gradient_added(self, params: dict[str, torch.nn.Parameter]) -> None:
        """Called right after the penalty's gradient is in ``.grad`` (for subclasses)."""

    def after_backward(self, strategy, **kwargs) -> None:
        if self.penalty.num_tasks == 0:
            return
        if not self._gradient_added:  # backward did not start at the loss seen before it
            self._add_gradient(self.params(strategy), 1.0)
        strategy.loss = strategy.loss.detach() + self.last_penalty

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._params = None

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "last_penalty": self.last_penalty}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.last_penalty = float(state["last_penalty"])
