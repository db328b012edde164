"""Synaptic Intelligence's path integral and its quadratic penalty (no Avalanche).

Zenke, Poole & Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017.
During task ``mu`` every optimiser step adds ``-g * (theta_after - theta_before)`` to a
per-parameter running sum ``omega`` (``g``: the gradient of the task loss, without the SI
penalty). At the end of the task

    Omega += omega / ((theta_end - theta_start)^2 + xi)

with the damping ``xi`` (0.1 in the paper's Split MNIST runs) and no clipping, and the
anchor becomes ``theta_end``. The penalty is ``c * sum_ij Omega[ij] (theta_ij - anchor[ij])^2``.

The path integral is accumulated in float32 (float64 for float64 parameters), and a step
skipped by a ``GradScaler`` (parameters unchanged, gradients not finite) adds nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from alpha_mas_avalanche.parameters import pad_to
from alpha_mas_avalanche.penalty import WorkBuffers, add_quadratic_gradient_, zero_penalty
from alpha_mas_avalanche.precision import accumulation_dtype, zero_sums
from alpha_mas_avalanche.validation import check_finite_float


class SynapticIntelligence:
    """Path integral over one task at a time and the consolidated SI quadratic.

    Args:
        strength: ``c`` > 0, the penalty's coefficient.
        damping: ``xi`` > 0 in ``omega / (Delta^2 + xi)``.

    Call :meth:`begin_task`, then per optimiser step :meth:`before_step` and
    :meth:`after_step`, then :meth:`end_task`. Parameters that appear for the first time
    (a new head) have zero importance: they carry no penalty.
    """

    def __init__(self, strength: float = 1.0, damping: float = 0.1) -> None:
        self.strength = check_finite_float("strength", strength, positive=True)
        self.damping = check_finite_float("damping", damping, positive=True)
        self.importance: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}
        self.num_tasks = 0
        self._start: dict[str, Tensor] = {}
        self._omega: dict[str, Tensor] = {}
        self._before: dict[str, Tensor] = {}
        self._work = WorkBuffers()

    # ------------------------------------------------------------ path integral
    @torch.no_grad()
    def begin_task(self, params: Mapping[str, Tensor]) -> None:
        """Start a task at ``params``: running sums to zero."""
        self._start = {n: p.detach().clone() for n, p in params.items()}
        self._omega = zero_sums(params)
        self._before = {}

    @torch.no_grad()
    def before_step(self, params: Mapping[str, Tensor]) -> None:
        """Remember the parameters before the optimiser step."""
        self._before = {n: p.detach().clone() for n, p in params.items()}

    @torch.no_grad()
    def after_step(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor]) -> None:
        """``omega -= g * (theta - theta_before)``, for the parameters with a gradient.

        A term that is not finite (a step a ``GradScaler`` skipped: inf gradient, no
        change) adds 0; a divergence shows in the parameters, checked at the task's end."""
        if not self._before:
            raise RuntimeError("SynapticIntelligence.after_step called without before_step")
        for name, grad in grads.items():
            if name in self._omega:
                omega = self._omega[name] = self._following(self._omega[name], params[name])
                delta = params[name].detach().to(omega.dtype) - self._before[name].to(omega.dtype)
                term = (grad.to(omega.dtype) * delta).nan_to_num_(0.0, 0.0, 0.0)
                omega.sub_(term)
        self._before = {}

    @torch.no_grad()
    def end_task(self, params: Mapping[str, Tensor],
                 combine: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
                 ) -> dict[str, Tensor]:
        """Fold the task's path integral into ``Omega``; anchor at ``params``.

        ``combine``, if given, maps the path integrals first (the mean over the ranks of a
        data-parallel job). Returns the task's increment ``omega / (Delta^2 + xi)``. Raises
        ValueError (and changes nothing) if the parameters or the path integral are not
        finite.
        """
        if combine is not None:
            self._omega = combine(self._omega)
        increments = {}
        for name, omega in self._omega.items():
            theta = params[name].detach()
            if not bool(torch.isfinite(theta).all()):
                raise ValueError(f"parameter {name!r} is not finite at the end of the task "
                                 "(training diverged); lower the learning rate or the strength")
            theta = theta.to(omega.dtype)
            omega = self._following(omega, params[name])
            delta = theta - self._start[name].to(theta)
            increments[name] = omega / (delta * delta + self.damping)
            if not bool(torch.isfinite(increments[name]).all()):
                raise ValueError(f"SI importance of parameter {name!r} is not finite")
        for name, increment in increments.items():
            if name in self.importance:
                self.importance[name] = pad_to(self.importance[name], increment) + increment
            else:
                self.importance[name] = increment.clone()
        self.anchor = {n: p.detach().clone() for n, p in params.items() if n in self.importance}
        self.num_tasks += 1
        self._omega, self._start = {}, {}
        return increments

    @staticmethod
    def _following(omega: Tensor, param: Tensor) -> Tensor:
        """The running sum on ``param``'s device (restored elsewhere), in its accumulation dtype."""
        return omega.to(param.device, accumulation_dtype(param))

    # ------------------------------------------------------------------ penalty
    def _terms(self, params: Mapping[str, Tensor]):
        for name, weight in self.importance.items():
            if name not in params:
                continue
            p = params[name]
            if weight.shape != p.shape or weight.device != p.device or weight.dtype != p.dtype:
                self.importance[name] = pad_to(weight, p.detach())
                self.anchor[name] = pad_to(self.anchor[name], p.detach())
            yield p, self.importance[name], self.anchor[name]

    def value(self, params: Mapping[str, Tensor]) -> Tensor:
        """``c * sum Omega (theta - anchor)^2`` (differentiable)."""
        terms = list(self._terms(params))
        if not terms:
            return zero_penalty(params)
        return self.strength * sum((w * (p - a) ** 2).sum() for p, w, a in terms)

    @torch.no_grad()
    def add_gradient_(self, params: Mapping[str, Tensor], factor: Tensor | float = 1.0) -> Tensor:
        """Add ``factor * 2 c Omega (theta - anchor)`` to each ``.grad`` (creating it where it
        is None); return the penalty value as a 0-d tensor on the parameters' device
        (``factor`` may be a tensor there; nothing is read back to the host)."""
        terms = list(self._terms(params))
        if not terms:
            return zero_penalty(params)
        return self.strength * add_quadratic_gradient_(*zip(*terms), coefficient=self.strength,
                                                      factor=factor, buffers=self._work)

    @property
    def max_curvature(self) -> float:
        """Largest second derivative of the penalty, ``2 c max_ij Omega[ij]`` (0 before the
        first task); plain SGD on it alone diverges when ``lr * max_curvature > 2 (1 + beta)``."""
        if not self.importance:
            return 0.0
        return 2.0 * self.strength * max(float(w.max()) for w in self.importance.values()
                                         if w.numel())

    # -------------------------------------------------------------------- state
    def hyperparameters(self) -> dict:
        """The settings a saved state carries."""
        return {"strength": self.strength, "damping": self.damping}

    def parameter_tables(self) -> list[dict[str, Tensor]]:
        """The state's tables keyed by parameter name."""
        return [self.importance, self.anchor, self._start, self._omega]

    def state_dict(self) -> dict:
        def copy(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
            return {n: t.clone() for n, t in tensors.items()}

        return {"strength": self.strength, "damping": self.damping, "num_tasks": self.num_tasks,
                "importance": copy(self.importance), "anchor": copy(self.anchor),
                "start": copy(self._start), "omega": copy(self._omega)}

    def load_state_dict(self, state: Mapping) -> None:
        fresh = SynapticIntelligence(state["strength"], state["damping"])
        self.__dict__.update(fresh.__dict__)
        self.num_tasks = int(state["num_tasks"])
        self.importance = {n: t.clone() for n, t in state["importance"].items()}
        self.anchor = {n: t.clone() for n, t in state["anchor"].items()}
        self._start = {n: t.clone() for n, t in state["start"].items()}
        self._omega = {n: t.clone() for n, t in state["omega"].items()}

