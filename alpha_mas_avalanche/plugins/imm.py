"""Incremental Moment Matching (IMM) as an Avalanche plugin."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from alpha_mas_avalanche import distributed
from alpha_mas_avalanche.imm_merge import (
    DROP_TRANSFER_LAYERS,
    FISHER_ESTIMATES,
    MODES,
    DropTransfer,
    fisher_sums,
    imm_merge,
    merge_coefficients,
    used_parameters,
)
from alpha_mas_avalanche.parameters import (
    leading_block,
    model_device,
    pad_to,
    trainable_parameters,
    unwrap,
)
from alpha_mas_avalanche.plugins.base import ContinualPlugin
from alpha_mas_avalanche.validation import (
    check_choice,
    check_finite_float,
    check_positive_int,
    check_probability,
)


class IMMPlugin(ContinualPlugin):
    """Incremental Moment Matching.

    Lee, Kim, Jun, Ha, Zhang, "Overcoming Catastrophic Forgetting by Incremental Moment
    Matching", NeurIPS 2017. Each experience ``k`` is learned on its own (``theta_k``);
    after it, the solutions of all experiences so far are merged and the merged network is
    what evaluation sees:

    - mean-IMM: ``theta = sum_k a_k theta_k``;
    - mode-IMM: ``theta = (sum_k a_k F_k)^-1 sum_k a_k F_k theta_k``, ``F_k`` the diagonal
      Fisher information on experience ``k``'s training data.

    Experience ``k`` starts from ``theta_{k-1}`` (weight-transfer) rather than from the
    merged network, with optional L2-transfer (``l2_transfer * ||theta - theta_{k-1}||^2``
    added to the loss) and drop-transfer (dropout on every ``Linear``/``Conv`` layer but
    the output heads, with ``theta_{k-1}`` as zero point). As in the authors' code, on the
    first experience the zero point and the L2 anchor are 0 (ordinary dropout, weight decay).

    Multi-head models (Avalanche ``MultiTaskModule``): a parameter is merged over the
    experiences whose output depends on it, so each head keeps its own task's solution.
    Buffers (e.g. BatchNorm statistics) are those of the latest experience. Memory:
    one copy of the trainable parameters per experience (and one Fisher for mode-IMM).

    Data parallel: the Fisher sums and sample counts are added over the ranks (one
    all-reduce per experience; each rank evaluates its share of the experience), and the
    merged weights are broadcast from rank 0, so the replicas stay equal.
    ``last_penalty`` is the L2-transfer term of the last training step.

    Args:
        mode: ``"mode"`` (mode-IMM) or ``"mean"`` (mean-IMM).
        merge_weights: the mixing ratios ``a_k`` (summing to 1 over the ``K`` experiences
            merged): ``"uniform"`` (``a_k = 1/K``, the default, as in De Lange et al.'s
            survey); a float ``alpha`` in (0, 1]: ``a_K = alpha`` for the newest experience
            and ``(1 - alpha)/(K - 1)`` for each earlier one (the paper's ``alpha_K``); or a
            sequence of positive relative weights, one per experience.
        weight_transfer: start experience ``k`` from ``theta_{k-1}``; ``False`` restarts
            every experience from the parameters the first one started from.
        l2_transfer: ``lambda >= 0`` of L2-transfer (0: off).
        drop_transfer: drop probability ``p`` in [0, 1) of drop-transfer (0: off).
        fisher_estimate: ``"exact"`` (expectation over the model's predictive distribution),
            ``"sampled"`` (one label drawn from it per sample, the authors' code) or
            ``"empirical"`` (true labels); mode-IMM only.
        max_fisher_samples: estimate the Fisher on a random subset of at most this many
            samples of the experience (None: all). Per-sample gradients cost about 10 ms per
            sample and class for a 784-400-400 MLP on one CPU thread, hence the default.
        fisher_batch_size: batch size of the Fisher pass.
    """

    def __init__(
        self,
        mode: str = "mode",
        merge_weights: str | float | Sequence[float] = "uniform",
        weight_transfer: bool = True,
        l2_transfer: float = 0.0,
        drop_transfer: float = 0.0,
        fisher_estimate: str = "exact",
        max_fisher_samples: int | None = 1024,
        fisher_batch_size: int = 256,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, MODES)
        self.merge_weights = _check_merge_weights(merge_weights)
        self.weight_transfer = check_choice("weight_transfer", weight_transfer, (True, False))
        self.l2_transfer = check_finite_float("l2_transfer", l2_transfer, non_negative=True)
        self.drop_transfer = check_probability("drop_transfer", drop_transfer)
        self.fisher_estimate = check_choice("fisher_estimate", fisher_estimate, FISHER_ESTIMATES)
        if max_fisher_samples is not None:
            check_positive_int("max_fisher_samples", max_fisher_samples, extra="or None (all samples)")
        self.max_fisher_samples = max_fisher_samples
        self.fisher_batch_size = check_positive_int("fisher_batch_size", fisher_batch_size)
        self.solutions: list[dict[str, Tensor]] = []
        self.fishers: list[dict[str, Tensor]] = []
        self.used: list[set[str]] = []
        self.initial: dict[str, Tensor] | None = None
        self._anchor: dict[str, Tensor] | None = None
        self._hooks: list = []

    @property
    def last_l2_penalty(self) -> float:
        """The L2-transfer penalty of the last training step (reading it synchronises)."""
        return self.last_penalty

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy, **kwargs) -> None:
        super().before_training_exp(strategy, **kwargs)
        params = trainable_parameters(strategy.model)
        if self.initial is None:
            self.initial = {n: p.detach().clone() for n, p in params.items()}
        if self.solutions:
            start = self.solutions[-1] if self.weight_transfer else self.initial
            with torch.no_grad():
                for name, p in params.items():
                    if name in start:
                        leading_block(p, start[name], f"IMMPlugin: parameter {name!r}") \
                            .copy_(start[name])
        previous = self.solutions[-1] if self.solutions else {}
        self._anchor = {n: pad_to(previous[n], p) if n in previous else torch.zeros_like(p)
                        for n, p in params.items()}
        if self.drop_transfer > 0:
            self._add_drop_transfer(unwrap(strategy.model))

    def before_backward(self, strategy, **kwargs) -> None:
        if self.l2_transfer == 0:
            return
        penalty = sum(
            (p - self._anchor[n]).pow(2).sum() for n, p in trainable_parameters(strategy.model).items()
        )
        penalty = self.l2_transfer * penalty
        self._last_penalty = penalty.detach()
        strategy.loss = strategy.loss + penalty

    def after_training_exp(self, strategy, **kwargs) -> None:
        self._remove_drop_transfer()
        self._anchor = None
        data, max_samples = distributed.rank_share(strategy.experience.dataset.eval(),
                                                   self.max_fisher_samples)
        loader = DataLoader(data, batch_size=self.fisher_batch_size, shuffle=True,
                            collate_fn=getattr(data, "collate_fn", None))
        with self.importance_region(strategy.model):
            self.consolidate(strategy.model, _labelled_batches(loader, max_samples),
                             task_label=self.task_label(strategy))

    # ------------------------------------------------------------- public API
    def consolidate(
        self,
        model: nn.Module,
        batches: list[tuple[Tensor, Tensor]],
        *,
        task_label: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store ``model``'s parameters as a task solution (with its Fisher on ``batches``
        of ``(x, y)`` for mode-IMM) and load the IMM merge of all solutions into ``model``.

        Runs on the model's device, where the batches are moved (``device``, if given, must
        name it; see :func:`~alpha_mas_avalanche.parameters.model_device`), on the module
        inside any DDP / torch.compile wrapper. In a ``torch.distributed`` job every rank
        must call it: the Fisher sums are added over the ranks' batches and the merged
        weights broadcast from rank 0."""
        if not batches:
            raise ValueError("IMMPlugin: the experience holds no samples; nothing to merge")
        self.bind(model)
        model = unwrap(model)
        device = model_device(model, device)
        params = trainable_parameters(model)
        first_x = batches[0][0].to(device)
        self.used.append(used_parameters(model, first_x, task_label))
        self.solutions.append({n: p.detach().clone() for n, p in params.items()})
        if self.mode == "mode":
            sums, count = self.reduce(*fisher_sums(model, batches, task_label=task_label,
                                                   estimate=self.fisher_estimate,
                                                   device=device))
            self.fishers.append({n: t / count for n, t in sums.items()})
        merged = imm_merge(
            self.solutions[-1],
            self.solutions,
            merge_coefficients(self.merge_weights, len(self.solutions)),
            fishers=self.fishers if self.mode == "mode" else None,
            used=self.used,
        )
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(merged[name])
        distributed.broadcast_(list(params.values()))

    def parameter_tables(self) -> list[dict[str, Tensor] | set[str]]:
        initial = [self.initial] if self.initial is not None else []
        return [*self.solutions, *self.fishers, *self.used, *initial]

    def state_dict(self) -> dict:
        return {
            "solutions": self.solutions,
            "fishers": self.fishers,
            "used": [sorted(u) for u in self.used],
            "initial": self.initial,
        }

    def load_state_dict(self, state: dict) -> None:
        self.solutions = [dict(s) for s in state["solutions"]]
        self.fishers = [dict(f) for f in state["fishers"]]
        self.used = [set(u) for u in state["used"]]
        self.initial = None if state["initial"] is None else dict(state["initial"])
        self.state_loaded()

    # ---------------------------------------------------------------- helpers
    def _add_drop_transfer(self, model: nn.Module) -> None:
        for name, module in _drop_transfer_layers(model):
            hook = DropTransfer(
                self.drop_transfer,
                self._anchor[f"{name}.weight"],
                self._anchor.get(f"{name}.bias"),
            )
            self._hooks.append(module.register_forward_hook(hook))

    def _remove_drop_transfer(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


def _check_merge_weights(value: Any) -> str | float | tuple[float, ...]:
    accepted = ("merge_weights: expected 'uniform', a number in (0, 1] (the newest task's "
                "weight) or a non-empty sequence of finite numbers > 0 (one per experience)")
    if isinstance(value, str):
        if value != "uniform":
            raise ValueError(f"{accepted}, got {value!r}")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        alpha = check_finite_float("merge_weights", value)
        if not 0 < alpha <= 1:
            raise ValueError(f"{accepted}, got {value!r}")
        return alpha
    if isinstance(value, (list, tuple)) and value:
        weights = []
        for w in value:
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise ValueError(f"{accepted}, got {value!r}")
            try:
                w = float(w)
            except OverflowError:
                raise ValueError(f"{accepted}, got an int too large for a float") from None
            if not (w > 0 and w < float("inf")):
                raise ValueError(f"{accepted}, got {value!r}")
            weights.append(w)
        return tuple(weights)
    raise ValueError(f"{accepted}, got {value!r}")


def _labelled_batches(loader: DataLoader, max_samples: int | None) -> list[tuple[Tensor, Tensor]]:
    """``(x, y)`` batches of at most ``max_samples`` samples in total."""
    batches, remaining = [], float("inf") if max_samples is None else max_samples
    for batch in loader:
        if remaining <= 0:
            break
        x, y = batch[0], batch[1]
        if x.shape[0] > remaining:
            x, y = x[: int(remaining)], y[: int(remaining)]
        remaining -= x.shape[0]
        batches.append((x, y))
    return batches


def _drop_transfer_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``Linear``/``Conv`` layers with trainable weights, output heads excluded: the
    modules under ``model.classifier`` if there is one, else the last such layer."""
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, DROP_TRANSFER_LAYERS) and m.weight.requires_grad]
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Module):
        heads = {id(m) for m in classifier.modules()}
        return [(n, m) for n, m in layers if id(m) not in heads]
    return layers[:-1]
