"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017) as an Avalanche plugin."""
from __future__ import annotations

from typing import ClassVar

import torch

from alpha_mas_avalanche.distributed import mean_over_ranks
from alpha_mas_avalanche.penalty import exact_total
from alpha_mas_avalanche.plugins.quadratic import QuadraticPenaltyPlugin
from alpha_mas_avalanche.synaptic import SynapticIntelligence


class SIPlugin(QuadraticPenaltyPlugin):
    """Synaptic Intelligence, after Zenke, Poole & Ganguli, "Continual Learning Through
    Synaptic Intelligence", ICML 2017.

    Per optimiser step, ``omega -= g * (theta_after - theta_before)``, where ``g`` is the
    gradient of the loss *without* the SI penalty, as in the authors' code and in Hsu et
    al.'s (2018) re-implementation: ``.grad`` after ``backward`` minus the penalty's part,
    which this plugin adds first thing in ``backward`` (terms other plugins add to the loss
    are part of ``g``; a plugin that rewrites ``.grad`` in ``after_backward`` before this one,
    such as A-GEM listed first, changes ``g`` too). Where backward does not pass through the
    loss this plugin saw (another plugin replaced it), the penalty's gradient is added in
    ``after_backward`` instead, and ``g`` is ``.grad`` read just before that.
    At the end of each experience ``Omega += omega / (Delta^2 + xi)`` (``Delta``: the
    parameters' change over the experience) with no clipping, and the anchor becomes the
    current parameters. Penalty: ``c * sum Omega (theta - anchor)^2``. Parameters first
    seen in an experience (a new head) carry no penalty; untouched heads have ``g = 0``.

    Mixed precision: ``g`` is read from ``.grad`` divided by the loss hook's factor
    ``d(root)/d(loss)``, so gradients a ``GradScaler`` scaled are unscaled (a step it skips
    adds nothing); the path integral is accumulated in float32. Training that diverged
    raises :class:`~alpha_mas_avalanche.plugins.quadratic.TrainingDivergedError`.

    Under DDP ``g`` is the gradient DDP averaged over the ranks, so the path integral is
    the same on every rank; it is averaged over the ranks at the end of each experience all
    the same (one all-reduce; equal values stay equal, bit for bit).

    Unlike Avalanche 0.6's ``SynapticIntelligencePlugin``, whose weight snapshots alias
    the live parameters on CPU (see docs/harness.md), clips importances at 0.001 and damps
    with 1e-7, this one copies its snapshots and uses the paper's ``xi``.

    Args:
        si_lambda: ``c`` > 0, the penalty's strength.
        damping: ``xi`` > 0 (the paper uses 0.1 on Split MNIST).
    """

    strength_name = "si_lambda"
    hyperparameter_names: ClassVar[dict[str, str]] = {"strength": "si_lambda",
                                                      "damping": "damping"}

    def __init__(self, si_lambda: float = 1.0, damping: float = 0.1) -> None:
        super().__init__(SynapticIntelligence(si_lambda, damping))
        self._grads: dict[str, torch.Tensor] = {}
        self._penalty_grads: dict[str, torch.Tensor] = {}
        self._loss_scale: torch.Tensor | float = 1.0
        self._late = False  # True while after_backward adds the penalty's gradient

    @property
    def importance_totals(self) -> list[float]:
        """``sum_ij Omega[ij]`` of the consolidated importance (one number once trained)."""
        if not self.penalty.importance:
            return []
        return [exact_total(self.penalty.importance.values())]

    def before_training_exp(self, strategy, **kwargs) -> None:
        super().before_training_exp(strategy, **kwargs)
        self.penalty.begin_task(self.params(strategy))

    def before_backward(self, strategy, **kwargs) -> None:
        self._penalty_grads = {}
        self._loss_scale = 1.0
        super().before_backward(strategy, **kwargs)
        if self.penalty.num_tasks == 0 and isinstance(strategy.loss, torch.Tensor) \
                and strategy.loss.requires_grad:  # no penalty yet: only the loss scale
            strategy.loss.register_hook(self._keep_loss_scale)

    def _keep_loss_scale(self, factor: torch.Tensor) -> None:
        self._loss_scale = factor.detach().sum()

    def penalty_gradient_added(self, params: dict[str, torch.nn.Parameter],
                               factor: torch.Tensor | float) -> None:
        self._loss_scale = factor.detach() if isinstance(factor, torch.Tensor) else factor
        if self._late:  # .grad holds g and the penalty now: g was read before it was added
            return
        self._penalty_grads = {n: p.grad.detach().clone() for n, p in params.items()
                               if p.grad is not None}

    def after_backward(self, strategy, **kwargs) -> None:
        params = self.params(strategy)
        # the loss hook did not run: the base class adds the penalty's gradient below
        self._late = self.penalty.num_tasks > 0 and not self._gradient_added
        if self._late:
            self._grads = self._task_gradients(params, {})
        super().after_backward(strategy, **kwargs)
        if not self._late:
            self._grads = self._task_gradients(params, self._penalty_grads)
        self._late = False

    def _task_gradients(self, params: dict[str, torch.nn.Parameter],
                        penalty_grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``g``: each ``.grad`` less its part in ``penalty_grads``, unscaled (GradScaler)."""
        grads = {}
        for name, p in params.items():
            if p.grad is not None:
                grad = p.grad.detach().clone()
                if name in penalty_grads:
                    grad -= penalty_grads[name]
                grads[name] = grad / self._loss_scale
        return grads

    def before_update(self, strategy, **kwargs) -> None:
        self.penalty.before_step(self.params(strategy))

    def after_update(self, strategy, **kwargs) -> None:
        self.penalty.after_step(self.params(strategy), self._grads)
        self._grads = {}

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.check_divergence(strategy)
        try:
            self.penalty.end_task(self.params(strategy), combine=mean_over_ranks)
        except ValueError as err:
            raise ValueError(f"SIPlugin, experience {strategy.experience.current_experience}: "
                             f"{err}") from err
        super().after_training_exp(strategy, **kwargs)

