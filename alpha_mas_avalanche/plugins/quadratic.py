"""The shared base of the plugins whose penalty is a quadratic around anchors (AlphaMAS, SI,
L2): the loss hook that adds the penalty's gradient without a host synchronisation, and the
divergence guard at the end of each training experience.

The penalty object has ``num_tasks``, ``max_curvature``, ``value(params) -> Tensor`` and
``add_gradient_(params, factor) -> Tensor``, as
:class:`~alpha_mas_avalanche.penalty.ConsolidatedPenalty` and
:class:`~alpha_mas_avalanche.synaptic.SynapticIntelligence` do. With
``penalty_gradient="analytic"`` its gradient is added to ``.grad`` by a hook on the loss,
which runs first thing in ``backward`` (no autograd graph of the penalty), so every plugin
that reads or projects gradients after ``backward`` (A-GEM, GEM) sees them with the penalty,
whatever the plugin order. The hook's factor ``d(root)/d(loss)`` stays a tensor: a loss
scaled by a ``torch.amp.GradScaler`` gets the penalty gradient scaled alike, and nothing in
a training step waits for the device. The logged loss includes the penalty's value.

Under DDP the hook runs before DDP averages the gradients, so the penalty's gradient is
averaged with them; where it is added after the average instead (``after_backward``, when
another plugin replaced the loss), it is computed from state and parameters that are
identical on every rank, so it is identical too and the replicas stay equal.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from alpha_mas_avalanche.parameters import trainable_parameters
from alpha_mas_avalanche.plugins.base import ContinualPlugin
from alpha_mas_avalanche.validation import check_choice, check_finite_float

PENALTY_GRADIENTS = ("analytic", "autograd")
#: A training experience that multiplies the largest |parameter| (or 1, if larger) by more
#: than this is reported as diverged.
DIVERGENCE_GROWTH = 1e3


class TrainingDivergedError(FloatingPointError):
    """The model's parameters are no longer finite (or exploded) after a training experience."""


class QuadraticPenaltyPlugin(ContinualPlugin):
    """Base class: adds ``penalty``'s gradient in every backward once a task is stored, and
    checks at the end of each training experience that training did not diverge.

    ``last_penalty`` is the penalty's value at the last training step, a Python float read
    from the device only when asked for; ``last_penalty_tensor`` is the same value as a
    tensor (for loggers that sum on the device).

    Subclasses call :meth:`check_divergence` first in their ``after_training_exp`` and name
    their strength parameter in ``strength_name`` (used in the divergence message), and
    the constructor argument of each of the penalty's settings in ``hyperparameter_names``
    (used when a loaded state disagrees with them).
    """

    strength_name = "lambda_reg"
    hyperparameter_names: ClassVar[dict[str, str]] = {"lambda_reg": "lambda_reg", "lambda_mode": "lambda_mode",
                            "alpha_scaling": "alpha_scaling", "anchor": "anchor"}

    def __init__(self, penalty: Any, penalty_gradient: str = "analytic") -> None:
        super().__init__()
        self.penalty = penalty
        self.penalty_gradient = check_choice("penalty_gradient", penalty_gradient, PENALTY_GRADIENTS)
        self._params: dict[str, torch.nn.Parameter] | None = None
        self._gradient_added = False
        self._backward_hooked = False
        self._warned_no_backward = False
        self._warned_late_gradient = False
        self._start_magnitude: float | None = None  # largest |parameter| as training began
        # on the device: steps seen, the first step whose penalty was not finite, its value
        self._steps: Tensor | None = None
        self._first_overflow: Tensor | None = None
        self._overflow_value: Tensor | None = None

    # -------------------------------------------------------------- read-only
    def params(self, strategy) -> dict[str, torch.nn.Parameter]:
        """The trainable parameters, cached per experience (after model adaptation)."""
        if self._params is None:
            self._params = trainable_parameters(strategy.model)
        return self._params

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy, **kwargs) -> None:
        super().before_training_exp(strategy, **kwargs)
        # after Avalanche's model adaptation: the parameters of this experience
        self._params = trainable_parameters(strategy.model)
        self._backward_hooked = False
        self._steps = self._first_overflow = self._overflow_value = None
        self._start_magnitude = _largest_magnitude(self._params)[0]

    def before_backward(self, strategy, **kwargs) -> None:
        self._backward_hooked = True
        self._gradient_added = False
        if self.penalty.num_tasks == 0:
            return
        params = self.params(strategy)
        if self.penalty_gradient == "autograd":
            value = self.penalty.value(params)
            self._record_penalty(value.detach())
            strategy.loss = strategy.loss + value
        elif isinstance(strategy.loss, Tensor) and strategy.loss.requires_grad:
            # a loss of shape (1,) or broadcast: the penalty's factor is the gradient's sum
            strategy.loss.register_hook(lambda grad: self._add_gradient(params, grad.sum()))

    def _add_gradient(self, params: dict[str, torch.nn.Parameter], factor: Tensor | float) -> None:
        """Runs first thing in backward (``factor``: d(root)/d(loss), 1 unless the loss was
        scaled afterwards, e.g. by a ``GradScaler``); kept a tensor, never read on the host."""
        self._gradient_added = True
        self._record_penalty(self.penalty.add_gradient_(params, factor=factor))
        self.penalty_gradient_added(params, factor)

    def penalty_gradient_added(self, params: dict[str, torch.nn.Parameter],
                               factor: Tensor | float) -> None:
        """Called right after the penalty's gradient is in ``.grad`` (for subclasses)."""

    def _record_penalty(self, value: Tensor) -> None:
        """Keep the step's penalty, and (on the device) the first step where it overflowed."""
        value = value.detach()
        if self._steps is None:
            self._steps = torch.zeros((), dtype=torch.long, device=value.device)
            self._first_overflow = torch.full((), -1, dtype=torch.long, device=value.device)
            self._overflow_value = torch.zeros((), dtype=value.dtype, device=value.device)
        first = ~torch.isfinite(value) & (self._first_overflow < 0)
        self._first_overflow = torch.where(first, self._steps, self._first_overflow)
        self._overflow_value = torch.where(first, value, self._overflow_value)
        self._steps += 1
        self._last_penalty = value

    def after_backward(self, strategy, **kwargs) -> None:
        if self.penalty.num_tasks == 0 or self.penalty_gradient != "analytic":
            return
        if not self._gradient_added:  # strategy.loss was replaced, or needs no gradient
            self._add_gradient(self.params(strategy), 1.0)
            if not self._warned_late_gradient:
                self._warned_late_gradient = True
                warnings.warn(
                    f"{type(self).__name__}: backward did not pass through the loss it saw in "
                    "before_backward, so the analytic penalty gradient was added in "
                    "after_backward; a plugin that reads gradients before it there sees "
                    "them without the penalty (penalty_gradient='autograd' avoids this)",
                    stacklevel=2,
                )
        self._gradient_added = False
        strategy.loss = strategy.loss.detach() + self._last_penalty

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._params = None

    # ------------------------------------------------------- divergence guard
    def check_divergence(self, strategy) -> None:
        """Raise :class:`TrainingDivergedError` if a trainable parameter is NaN or inf, the
        penalty overflowed during the experience, or the largest |parameter| grew more than
        ``DIVERGENCE_GROWTH`` times (from ``max(its start, 1)``). Also warns once if the
        strategy never called the backward hooks (the penalty was not applied)."""
        experience = strategy.experience.current_experience
        params = trainable_parameters(strategy.model)
        for name, p in params.items():
            if not bool(torch.isfinite(p).all()):
                kind = "NaN" if bool(torch.isnan(p).any()) else "inf"
                raise TrainingDivergedError(self._divergence(
                    strategy, f"experience {experience} (parameter {name!r} is {kind})"))
        largest, name = _largest_magnitude(params)
        if self._first_overflow is not None and int(self._first_overflow) >= 0:
            iteration, value = int(self._first_overflow), float(self._overflow_value)
            raise TrainingDivergedError(self._divergence(
                strategy, f"experience {experience} (the penalty was {value} at iteration "
                f"{iteration}; largest |parameter| {largest:.3g}, in {name!r})"))
        start = self._start_magnitude
        if start is not None and largest > DIVERGENCE_GROWTH * max(start, 1.0):
            raise TrainingDivergedError(self._divergence(
                strategy, f"experience {experience} (the largest |parameter| grew from "
                f"{start:.3g} to {largest:.3g}, in {name!r})"))
        if not self._backward_hooked and not self._warned_no_backward:
            self._warned_no_backward = True
            warnings.warn(
                f"{type(self).__name__}, experience {experience}: the strategy "
                f"({type(strategy).__name__}) never called the before_backward hook during "
                "training, so the penalty is not applied by it (Avalanche's EWC and MAS "
                "plugins are not either)",
                stacklevel=3,
            )

    def max_stable_lr(self, momentum: float = 0.0) -> float:
        """The largest learning rate at which SGD with ``momentum`` stays stable on the
        penalty alone, ``2 (1 + momentum) / max_curvature`` (infinite before the first
        task). Outside the training step: it reads the penalty's weights back to the host."""
        check_finite_float("momentum", momentum, non_negative=True)
        if momentum >= 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        curvature = self.penalty.max_curvature
        return math.inf if curvature == 0 else 2.0 * (1.0 + momentum) / curvature

    def _divergence(self, strategy, where: str) -> str:
        message = (f"training diverged in {where}; lower the learning rate or "
                   f"{self.strength_name}")
        curvature = self.penalty.max_curvature
        if curvature == 0:
            return message + " (no penalty was active yet)"
        message += (f". The penalty's largest curvature is {curvature:.4g}; "
                    "SGD on it alone is stable only while lr * that < 2 (1 + momentum)")
        lrs = [g.get("lr") for g in getattr(strategy.optimizer, "param_groups", [])]
        lrs = [lr for lr in lrs if isinstance(lr, (int, float)) and math.isfinite(lr)]
        if lrs:
            message += f" (here lr * that = {max(lrs) * curvature:.4g})"
        return message

    # ------------------------------------------------------------------ state
    def parameter_tables(self) -> list[dict[str, Tensor]]:
        return self.penalty.parameter_tables()

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "last_penalty": self.last_penalty}

    def load_state_dict(self, state: dict, strict_hyperparameters: bool = True) -> None:
        """Restore a :meth:`state_dict`. Its settings (e.g. ``lambda_reg``) must be this
        plugin's: a mismatch raises a ValueError naming them, unless
        ``strict_hyperparameters=False``, which continues with the saved settings. Parameter
        names saved under DDP or torch.compile are matched to the model at the next
        experience (a name that matches no parameter is an error then)."""
        loaded = type(self.penalty)()
        loaded.load_state_dict(state["penalty"])
        saved, mine = loaded.hyperparameters(), self.penalty.hyperparameters()
        different = [k for k in mine if saved[k] != mine[k]]
        if different and strict_hyperparameters:
            names = self.hyperparameter_names
            raise ValueError(
                f"{self.who}.load_state_dict: the state was saved with "
                + ", ".join(f"{names[k]}={saved[k]!r}" for k in different)
                + ", but this plugin was built with "
                + ", ".join(f"{names[k]}={mine[k]!r}" for k in different)
                + "; build the plugin with the saved values, or pass "
                "strict_hyperparameters=False to continue with the saved ones"
            )
        self.penalty = loaded
        self._last_penalty = float(state["last_penalty"])
        self.state_loaded()


def _largest_magnitude(params: dict[str, Tensor]) -> tuple[float, str]:
    """``(max |value|, name)`` over ``params`` (``(0.0, "")`` when empty): one transfer."""
    named = [(n, p) for n, p in params.items() if p.numel()]
    if not named:
        return 0.0, ""
    with torch.no_grad():
        maxima = torch.stack([p.detach().abs().max().float() for _, p in named]).cpu()
    index = int(maxima.argmax())
    return float(maxima[index]), named[index][0]
