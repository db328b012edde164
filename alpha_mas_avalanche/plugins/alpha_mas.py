"""AlphaMAS: Memory Aware Synapses with per-task alpha-scaling, as an Avalanche plugin."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule

from alpha_mas_avalanche.importance import mas_importance, trainable_parameters
from alpha_mas_avalanche.penalty import ConsolidatedPenalty
from alpha_mas_avalanche.validation import check_choice, check_positive_int

PENALTY_GRADIENTS = ("analytic", "autograd")
IMPORTANCE_FROM = ("after_training", "last_epochs")


class AlphaMASPlugin(SupervisedPlugin):
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
            strategy draws during its last ``importance_epochs`` training epochs. The
            parameters move during those epochs, so this estimate averages the importance
            over that stretch of the trajectory. It is computed in eval mode with
            ``torch.func`` and never touches ``.grad``, BatchNorm statistics or the RNG, so
            the training updates are the same as with the default.
        importance_epochs: ``k`` for ``importance_from="last_epochs"``; at most the
            strategy's ``train_epochs``.
        penalty_gradient: ``"analytic"`` adds ``2 alpha Omega (theta - theta*)`` to the
            gradients with fused ops after ``backward`` (no graph); ``"autograd"`` adds the
            penalty to the loss before ``backward``. Both give the same updates; either
            way the logged loss includes the penalty.

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
    ) -> None:
        super().__init__()
        self.penalty = ConsolidatedPenalty(lambda_reg, lambda_mode, alpha_scaling)
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
        self._running_sums: dict[str, torch.Tensor] | None = None
        self._running_count = 0
        self._params: dict[str, torch.nn.Parameter] | None = None
        self.penalty_gradient = check_choice("penalty_gradient", penalty_gradient, PENALTY_GRADIENTS)
        self.last_penalty = 0.0

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
    def before_backward(self, strategy, **kwargs) -> None:
        if self.penalty.num_tasks == 0 or self.penalty_gradient != "autograd":
            return
        value = self.penalty.value(self._trainable(strategy))
        self.last_penalty = float(value.detach())
        strategy.loss = strategy.loss + value

    def after_backward(self, strategy, **kwargs) -> None:
        if self.penalty.num_tasks == 0 or self.penalty_gradient != "analytic":
            return
        self.last_penalty = self.penalty.add_gradient_(self._trainable(strategy))
        strategy.loss = strategy.loss.detach() + self.last_penalty

    def before_training_exp(self, strategy, **kwargs) -> None:
        if self.importance_from == "last_epochs" and self.importance_epochs > strategy.train_epochs:
            raise ValueError(
                f"importance_epochs: {self.importance_epochs} is more than the strategy's "
                f"train_epochs={strategy.train_epochs}; expected 1..{strategy.train_epochs}"
            )
        self._running_sums, self._running_count = None, 0
        # after Avalanche's model adaptation: the parameters of this experience
        self._params = trainable_parameters(strategy.model)

    def _trainable(self, strategy) -> dict[str, torch.nn.Parameter]:
        return self._params if self._params is not None else trainable_parameters(strategy.model)

    def before_forward(self, strategy, **kwargs) -> None:
        if self.importance_from != "last_epochs" or not strategy.is_training:
            return
        if strategy.clock.train_exp_epochs < strategy.train_epochs - self.importance_epochs:
            return
        batch = strategy.mb_x
        mean = mas_importance(
            strategy.model,
            batch,
            task_label=_task_label(strategy.model, strategy.experience),
            exact=True,
            batch_size=batch.shape[0],
            device=strategy.device,
        )
        n = batch.shape[0]
        if self._running_sums is None:
            self._running_sums = {name: omega * n for name, omega in mean.items()}
        else:
            for name, omega in mean.items():
                if name in self._running_sums:
                    self._running_sums[name] += omega * n
                else:
                    self._running_sums[name] = omega * n
        self._running_count += n

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._params = None
        experience = strategy.experience
        if self.importance_from == "last_epochs":
            if self._running_count == 0:
                raise ValueError(
                    f"AlphaMASPlugin, experience {experience.current_experience}: no training "
                    "mini-batch was seen in the last importance_epochs epochs"
                )
            importance = {n: s / self._running_count for n, s in self._running_sums.items()}
            self._running_sums, self._running_count = None, 0
            self._add_task(strategy.model, importance, experience.current_experience)
            return
        if self.importance_data is not None:
            data = self.importance_data(experience)
        else:
            data = experience.dataset.eval()
        self.consolidate(
            strategy.model,
            data,
            task_label=_task_label(strategy.model, experience),
            device=strategy.device,
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
        network trained elsewhere.
        """
        try:
            importance = mas_importance(
                model,
                data,
                task_label=task_label,
                exact=self.exact_importance,
                batch_size=self.importance_batch_size,
                max_samples=self.max_importance_samples,
                device=device,
            )
        except ValueError as err:
            raise ValueError(f"AlphaMASPlugin, experience {experience}: {err}") from err
        self._add_task(model, importance, experience)

    def _add_task(self, model: torch.nn.Module, importance: dict, experience: int | str) -> None:
        """Consolidate ``importance`` with the model's current parameters as anchor."""
        anchor = {n: p.detach() for n, p in trainable_parameters(model).items()}
        try:
            self.penalty.add_task(importance, anchor)
        except ValueError as err:
            raise ValueError(f"AlphaMASPlugin, experience {experience}: {err}") from err

    def state_dict(self) -> dict:
        return {"penalty": self.penalty.state_dict(), "last_penalty": self.last_penalty}

    def load_state_dict(self, state: dict) -> None:
        self.penalty.load_state_dict(state["penalty"])
        self.last_penalty = float(state["last_penalty"])


def _task_label(model: torch.nn.Module, experience) -> int | None:
    """The head to evaluate: the experience's task label for multi-head models."""
    if not isinstance(model, MultiTaskModule):
        return None
    labels = list(experience.task_labels)
    if len(labels) != 1:
        raise ValueError(
            f"AlphaMASPlugin: experience {experience.current_experience} has task labels "
            f"{labels}; importance for a multi-head model needs one task label per experience"
        )
    return int(labels[0])
