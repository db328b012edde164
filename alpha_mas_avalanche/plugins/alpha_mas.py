"""AlphaMAS: Memory Aware Synapses with per-task alpha-scaling, as an Avalanche plugin."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from alpha_mas_avalanche.distributed import rank_share
from alpha_mas_avalanche.importance import importance_sums, iterate_input_batches
from alpha_mas_avalanche.importance_window import ImportanceWindow
from alpha_mas_avalanche.parameters import model_device, trainable_parameters, unwrap
from alpha_mas_avalanche.penalty import ConsolidatedPenalty
from alpha_mas_avalanche.plugins.quadratic import (  # noqa: F401 (re-exported)
    DIVERGENCE_GROWTH,
    PENALTY_GRADIENTS,
    QuadraticPenaltyPlugin,
    TrainingDivergedError,
)
from alpha_mas_avalanche.validation import check_choice, check_positive_int

IMPORTANCE_FROM = ("after_training", "last_epochs")
#: Inputs of an experience on which ``importance_from="last_epochs"`` checks, before
#: training, that the model's samples do not interact (see ``per_sample``).
PROBE_SAMPLES = 8


class AlphaMASPlugin(QuadraticPenaltyPlugin):
    """Alpha-scaled Memory Aware Synapses.

    MAS (Aljundi, Babiloni, Elhoseiny, Rohrbach, Tuytelaars, "Memory Aware Synapses:
    Learning what (not) to forget", ECCV 2018) penalises changes of parameters that the
    learned function is sensitive to. Alpha-scaling weighs each earlier task ``t`` by
    ``alpha_t`` so that every task carries the same total importance
    (``alpha_t * S_t`` equal for all t, ``sum_t alpha_t = lambda``):

        L(theta) = L_new(theta) + sum_t alpha_t sum_ij Omega_t[ij] (theta_ij - theta*_t[ij])^2

    After each training experience the importance ``Omega_t`` (per-sample
    ``|d ||F(x)||^2 / d theta|`` averaged over the experience's inputs, or over
    ``importance_data(experience)``) is folded into a quadratic kept in constant memory
    (two tensors per parameter, see :class:`~alpha_mas_avalanche.penalty.ConsolidatedPenalty`).

    Args:
        lambda_reg: ``lambda`` > 0, the regularisation strength.
        lambda_mode: ``"fixed"``: ``sum_t alpha_t = lambda_reg`` (the reference paper sweeps
            lambda = N, 1.5N, 2N, 3N for N tasks); ``"per_task"``: ``sum_t alpha_t =
            lambda_reg * number of consolidated tasks``.
        alpha_scaling: ``False`` is plain MAS with per-task anchors, every
            ``alpha_t = lambda_reg`` (``lambda_mode`` is then irrelevant).
        exact_importance: per-sample absolute gradients (the paper's definition); ``False``
            uses Avalanche ``MASPlugin``'s batch approximation.
        importance_data: optional callable ``experience -> data`` (Tensor, Dataset or
            DataLoader of inputs, labels never read) to estimate importance on, e.g.
            unlabeled data; default: the experience's training inputs (eval transforms).
        max_importance_samples: use at most this many inputs per experience (None: all).
        importance_batch_size: batch size of the importance pass.
        importance_from: ``"after_training"`` (default, the MAS paper's way): one pass over
            the experience's inputs after training. ``"last_epochs"`` (the reference paper's
            variant): exact per-sample importance accumulated on the mini-batches the
            strategy draws during the last ``importance_epochs`` training epochs actually
            run (a rolling window of per-epoch sums, so an experience ended early, e.g. by
            Avalanche's ``EarlyStoppingPlugin``, still has its estimate; the importance is
            therefore computed on every training mini-batch, in every epoch). The
            parameters move during those epochs, so this estimate averages the importance
            over that stretch of the trajectory. It is computed in eval mode with
            ``torch.func`` and never touches ``.grad``, BatchNorm statistics or the RNG, so
            the training updates are the same as with the default.
        importance_epochs: ``k`` for ``importance_from="last_epochs"``; at most the
            strategy's ``train_epochs``.
        penalty_gradient: ``"analytic"`` adds ``2 alpha Omega (theta - theta*)`` to the
            gradients with fused ops (no graph of the quadratic) from a hook on the loss,
            which runs first thing in ``backward``; ``"autograd"`` adds the penalty to the
            loss. Either way the full gradient is in ``.grad`` when ``backward`` returns, so
            a plugin that rewrites gradients in ``after_backward`` (A-GEM, GEM) sees the
            same gradient in any plugin order, and both modes give the same updates to
            float rounding (in our digits runs beside A-GEM and GEM, in both plugin
            orders: bit-identical parameters after 3 experiences). The logged loss
            includes the penalty. If a later plugin replaces ``strategy.loss`` by a loss
            that does not pass through it, the gradient is added in ``after_backward``
            instead, with a warning.
        anchor: ``"per_task"`` (default): task ``t``'s term pulls towards ``theta*_t``, the
            parameters after task ``t``; ``"latest"``: every term pulls towards the latest
            task's parameters, as in Aljundi et al.'s MAS reference code (whose "MAS" is
            ``alpha_scaling=False, anchor="latest"``: summed Omega, one anchor).

    Experiences whose importance is zero for every parameter (the outputs do not depend
    on the trained parameters, e.g. iCaRL's nearest-mean classifier, StreamingLDA) are
    skipped with a warning; the penalty is unchanged. A NaN or inf importance is refused.

    Stability: the penalty's curvature is ``2 sum_t alpha_t Omega_t[ij]`` per parameter;
    plain SGD (learning rate ``lr``, momentum ``beta``) on the penalty alone diverges once
    ``lr * 2 max_ij sum_t alpha_t Omega_t[ij] > 2 (1 + beta)``
    (``penalty.max_curvature``), e.g. from ``lambda_reg`` large enough for the largest
    importance. After an experience, a non-finite parameter, a penalty that overflowed
    during it, or a largest |parameter| grown more than ``DIVERGENCE_GROWTH`` (1000) times
    (from ``max(its start, 1)``) raise :class:`TrainingDivergedError` naming the
    parameter and the bound, before any importance is computed.

    Strategies that never call the backward hooks (Avalanche's ``MER``) never apply the
    penalty; the plugin warns once when a training experience ends without them.

    Data parallel (DDP, Avalanche's ``DistributedHelper``): the importance sums and sample
    counts are added over the ranks (one all-reduce per experience), so every rank holds
    the importance of the whole experience, the same ``S_t``, alphas and anchors. Where
    every rank holds the whole experience, each rank evaluates its share of it. With
    ``exact_importance=False`` the mean is over all ranks' batches.

    Not to be confused with Avalanche's ``MASPlugin(alpha=...)``, where ``alpha`` is
    the decay of an exponential moving average of importances.
    """

    def __init__(
        self,
        lambda_reg: float = 1.0,
        lambda_mode: str = "fixed",
        alpha_scaling: bool = True,
        exact_importance: bool = True,
        importance_data: Callable[[Any], Any] | None = None,
        max_importance_samples: int | None = None,
        importance_batch_size: int = 256,
        importance_from: str = "after_training",
        importance_epochs: int = 1,
        penalty_gradient: str = "analytic",
        anchor: str = "per_task",
    ) -> None:
        super().__init__(ConsolidatedPenalty(lambda_reg, lambda_mode, alpha_scaling, anchor),
                         penalty_gradient)
        self.exact_importance = check_choice("exact_importance", exact_importance, (True, False))
        if importance_data is not None and not callable(importance_data):
            raise ValueError(
                "importance_data: expected None or a callable experience -> data, "
                f"got {type(importance_data).__name__}"
            )
        self.importance_data = importance_data
        if max_importance_samples is not None:
            check_positive_int(
                "max_importance_samples", max_importance_samples, extra="or None (all samples)"
            )
        self.max_importance_samples = max_importance_samples
        self.importance_batch_size = check_positive_int(
            "importance_batch_size", importance_batch_size
        )
        self.importance_from = check_choice("importance_from", importance_from, IMPORTANCE_FROM)
        self.importance_epochs = check_positive_int("importance_epochs", importance_epochs)
        self._window = ImportanceWindow(self.importance_epochs)

    # -------------------------------------------------------------- read-only
    @property
    def alphas(self) -> list[float]:
        """``alpha_t`` of every consolidated task, in order."""
        return self.penalty.alphas

    @property
    def importance_totals(self) -> list[float]:
        """``S_t = sum_ij Omega_t[ij]`` of every consolidated task, in order."""
        return list(self.penalty.totals)

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy, **kwargs) -> None:
        if self.importance_from == "last_epochs" and self.importance_epochs > strategy.train_epochs:
            raise ValueError(
                f"importance_epochs: {self.importance_epochs} is more than the strategy's "
                f"train_epochs={strategy.train_epochs}; expected 1..{strategy.train_epochs}"
            )
        super().before_training_exp(strategy, **kwargs)
        if self.importance_from == "last_epochs":
            model = unwrap(strategy.model)
            with self.importance_region(model):
                self._window.start(model, self.params(strategy), self.task_label(strategy),
                                   _probe(strategy.experience, model))

    def before_forward(self, strategy, **kwargs) -> None:
        if self.importance_from == "last_epochs" and strategy.is_training:
            with self.importance_region(strategy.model):
                self._window.add(strategy.mb_x, strategy.clock.train_exp_epochs)

    def after_training_exp(self, strategy, **kwargs) -> None:
        experience = strategy.experience
        try:
            self.check_divergence(strategy)
        except TrainingDivergedError:
            self._window.close()
            raise
        super().after_training_exp(strategy, **kwargs)
        if self.importance_from == "last_epochs":
            sums, count = self.reduce(*self._window.finish())
            if count == 0:
                raise ValueError(
                    f"AlphaMASPlugin, experience {experience.current_experience}: no training "
                    "mini-batch reached the before_forward hook in this experience (training "
                    "stopped before its first iteration, or the strategy, e.g. MER, calls no "
                    "forward hooks); importance_from='last_epochs' has nothing to average"
                )
            self._add_task(strategy.model, {n: t / count for n, t in sums.items()},
                           experience.current_experience)
            return
        if self.importance_data is not None:
            data = self.importance_data(experience)
        else:
            data = experience.dataset.eval()
        self.consolidate(
            strategy.model,
            data,
            task_label=self.task_label(strategy),
            experience=experience.current_experience,
        )

    # ------------------------------------------------------------- public API
    def consolidate(
        self,
        model: torch.nn.Module,
        data: Any,
        *,
        task_label: int | None = None,
        device: torch.device | str | None = None,
        experience: int | str = "given",
    ) -> None:
        """Register ``model``'s current function as a task to preserve.

        Estimates MAS importance on ``data`` (inputs only; labels are never read), with the
        current parameters as anchor. Also usable before the first experience to protect a
        network trained elsewhere. Runs on the model's device (``device``, if given, must
        name it; see :func:`~alpha_mas_avalanche.parameters.model_device`), on the module
        inside any DDP / torch.compile wrapper, with autocast off. In a ``torch.distributed``
        job every rank must call it (the sums are added over the ranks).
        """
        self.bind(model)
        data, max_samples = rank_share(data, self.max_importance_samples)
        try:
            with self.importance_region(model):
                sums, count = importance_sums(
                    model,
                    data,
                    task_label=task_label,
                    exact=self.exact_importance,
                    batch_size=self.importance_batch_size,
                    max_samples=max_samples,
                    device=device,
                )
            sums, count = self.reduce(sums, count)
        except ValueError as err:
            raise ValueError(f"AlphaMASPlugin, experience {experience}: {err}") from err
        except (AssertionError, RuntimeError) as err:  # raised by the model's own forward
            raise RuntimeError(
                f"AlphaMASPlugin, experience {experience}: the model's eval-mode forward "
                f"failed while estimating MAS importance ({type(err).__name__}: {err})"
            ) from err
        self._add_task(model, {n: t / count for n, t in sums.items()}, experience)

    def _add_task(self, model: torch.nn.Module, importance: dict, experience: int | str) -> None:
        """Consolidate ``importance`` with the model's current parameters as anchor; an
        all-zero (finite) importance is skipped with a warning."""
        finite = all(bool(torch.isfinite(o).all()) for o in importance.values())
        if finite and not any(bool(o.any()) for o in importance.values()):
            warnings.warn(
                f"AlphaMASPlugin, experience {experience}: the importance is 0 for every "
                "trainable parameter (the model's outputs do not depend on them the way MAS "
                "measures, as with iCaRL's nearest-mean classifier or StreamingLDA's "
                "closed-form head); this experience is not consolidated and the penalty is "
                "unchanged",
                stacklevel=3,
            )
            return
        anchor = {n: p.detach() for n, p in trainable_parameters(model).items()}
        try:
            self.penalty.add_task(importance, anchor)
        except ValueError as err:
            raise ValueError(f"AlphaMASPlugin, experience {experience}: {err}") from err


def _probe(experience, model: torch.nn.Module) -> torch.Tensor | None:
    """The first ``PROBE_SAMPLES`` inputs of the experience (eval transforms), on the
    model's device, or None if it has fewer than two."""
    batch = next(iterate_input_batches(experience.dataset.eval(), PROBE_SAMPLES,
                                       PROBE_SAMPLES), None)
    if batch is None or batch.shape[0] < 2:
        return None
    return batch.to(model_device(model))
