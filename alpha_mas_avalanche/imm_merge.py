"""Incremental Moment Matching math (Lee, Kim, Jun, Ha, Zhang, "Overcoming Catastrophic
Forgetting by Incremental Moment Matching", NeurIPS 2017). No Avalanche here.

- mean-IMM: ``theta = sum_k a_k theta_k`` (``sum_k a_k = 1``);
- mode-IMM: ``theta = (sum_k a_k F_k)^-1 sum_k a_k F_k theta_k`` with diagonal Fisher ``F_k``;
- drop-transfer: dropout whose zero point is ``theta_{k-1}``: the weight vector of node
  ``i`` is ``theta_{k-1,i}`` when the node is dropped, else
  ``theta_{k,i} / (1-p) - p / (1-p) * theta_{k-1,i}`` (expected value ``theta_{k,i}``).

Parameters a task never uses (the heads of other tasks in a multi-head model, the rows a
growing classifier gained later) are merged over the tasks that use them only.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

from alpha_mas_avalanche.importance import PER_SAMPLE_BUDGET, forward_functional
from alpha_mas_avalanche.parameters import model_device, pad_to, trainable_parameters, unwrap
from alpha_mas_avalanche.precision import accumulation_dtype, autocast_off, zero_sums
from alpha_mas_avalanche.validation import check_choice

MODES = ("mean", "mode")
FISHER_ESTIMATES = ("exact", "sampled", "empirical")


def merge_coefficients(merge_weights: Any, num_tasks: int) -> list[float]:
    """The mixing ratios ``a_1..a_K`` (summing to 1) for ``K = num_tasks`` tasks.

    ``"uniform"``: ``a_k = 1/K``. A float ``alpha`` in (0, 1]: ``a_K = alpha`` for the newest
    task and ``(1 - alpha) / (K - 1)`` for each earlier one (the authors' code). A sequence
    of positive relative weights ``w_k``, one per task: ``a_k = w_k / sum_{j<=K} w_j``.
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks: expected an int >= 1, got {num_tasks!r}")
    if isinstance(merge_weights, str):
        check_choice("merge_weights", merge_weights, ("uniform",))
        return [1.0 / num_tasks] * num_tasks
    if isinstance(merge_weights, float):
        if num_tasks == 1:
            return [1.0]
        rest = (1.0 - merge_weights) / (num_tasks - 1)
        return [rest] * (num_tasks - 1) + [merge_weights]
    if len(merge_weights) < num_tasks:
        raise ValueError(
            f"merge_weights: gives {len(merge_weights)} relative weights, but {num_tasks} "
            "tasks are to be merged; give one weight per experience"
        )
    used = [float(w) for w in merge_weights[:num_tasks]]
    total = sum(used)
    return [w / total for w in used]


def imm_merge(
    current: Mapping[str, Tensor],
    solutions: Sequence[Mapping[str, Tensor]],
    coefficients: Sequence[float],
    *,
    fishers: Sequence[Mapping[str, Tensor]] | None = None,
    used: Sequence[Collection[str]] | None = None,
) -> dict[str, Tensor]:
    """Merge the per-task solutions ``theta_k`` into one set of parameters.

    Args:
        current: name -> current value; gives the names and shapes to produce, and the
            value kept where no task uses an entry.
        solutions: ``theta_k`` for each task, name -> tensor (a task may lack a name).
        coefficients: ``a_k`` for each task (non-negative).
        fishers: ``F_k`` (diagonal, same shapes as ``theta_k``) for mode-IMM; ``None``
            gives mean-IMM.
        used: for each task, the names of the parameters it uses (default: all it has).

    mean-IMM gives ``sum_k a_k theta_k / sum_k a_k`` over the tasks that use an entry;
    mode-IMM ``sum_k a_k F_k theta_k / sum_k a_k F_k``, falling back to mean-IMM where the
    Fisher of every such task is exactly zero.
    """
    if len(solutions) != len(coefficients):
        raise ValueError("coefficients: expected one per solution")
    if fishers is not None and len(fishers) != len(solutions):
        raise ValueError("fishers: expected one per solution")
    merged = {}
    for name, value in current.items():
        mean_num = torch.zeros_like(value)
        mean_den = torch.zeros_like(value)
        mode_num = torch.zeros_like(value)
        mode_den = torch.zeros_like(value)
        for k, (theta, a_k) in enumerate(zip(solutions, coefficients)):
            if name not in theta or (used is not None and name not in used[k]):
                continue
            stored = theta[name]
            theta_k = pad_to(stored, value, f"parameter {name!r}")
            # a grown layer: its new units count only for the tasks that had them
            weight = a_k if stored.shape == value.shape else \
                a_k * pad_to(torch.ones_like(stored), value)
            mean_num += weight * theta_k
            mean_den += weight
            if fishers is not None:
                fisher_k = pad_to(fishers[k][name], value, f"parameter {name!r}")
                mode_num += weight * fisher_k * theta_k
                mode_den += weight * fisher_k
        mean = torch.where(mean_den > 0, mean_num / mean_den.clamp_min(1e-38), value)
        if fishers is None:
            merged[name] = mean
        else:
            merged[name] = torch.where(mode_den > 0, mode_num / mode_den.clamp_min(1e-38), mean)
    return merged


def _forward(model: nn.Module, x: Tensor, task_label: int | None) -> Tensor:
    """``model(x)``, or ``model(x, task_label)`` with an int label (Avalanche's
    ``MultiTaskModule`` single-task path)."""
    return model(x) if task_label is None else model(x, task_label)


def used_parameters(model: nn.Module, x: Tensor, task_label: int | None) -> set[str]:
    """Names of the trainable parameters the output for ``x`` depends on (gets a gradient),
    the model evaluated unwrapped (no DDP collective)."""
    model = unwrap(model)
    params = trainable_parameters(model)
    out = _forward(model, x, task_label)
    grads = torch.autograd.grad(out.sum(), list(params.values()), allow_unused=True)
    return {n for n, g in zip(params, grads) if g is not None}


def diagonal_fisher(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    task_label: int | None = None,
    estimate: str = "exact",
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Diagonal Fisher information of a classifier, averaged over samples.

    ``F = 1/N sum_n E_y[(d log p(y | x_n) / d theta)^2]`` with per-sample gradients.
    ``estimate``: ``"exact"`` takes the expectation over the model's own predictive
    distribution (``sum_c p_c g_c^2``); ``"sampled"`` draws one ``y ~ p(.|x_n)`` per sample
    (the authors' code); ``"empirical"`` uses the true label. The model is evaluated in
    eval mode, unwrapped (DDP, torch.compile), on its own device, where the batches are
    moved (``device``, if given, must name it); batches are ``(x, y)`` (``y`` read only for
    ``"empirical"``). The per-sample gradients run with autocast off and the Fisher is
    accumulated in float32 (float64 for float64 parameters) whatever the autocast state.
    """
    sums, count = fisher_sums(model, batches, task_label=task_label, estimate=estimate,
                              device=device, generator=generator)
    if count == 0:
        raise ValueError("data: holds no samples; the Fisher needs at least one input")
    return {n: t / count for n, t in sums.items()}


def fisher_sums(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    task_label: int | None = None,
    estimate: str = "exact",
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], int]:
    """``(sum over samples of the per-sample Fisher terms, number of samples)``: the parts
    of :func:`diagonal_fisher` (same arguments) that add up across data-parallel ranks."""
    check_choice("estimate", estimate, FISHER_ESTIMATES)
    model = unwrap(model)
    params = {n: p.detach() for n, p in trainable_parameters(model).items()}
    if not params:
        raise ValueError("model: has no trainable parameters (requires_grad=True)")
    device = model_device(model, device)
    constants = {**dict(model.named_buffers()),
                 **{n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}}
    numel = sum(p.numel() for p in params.values())
    chunk = max(1, PER_SAMPLE_BUDGET // max(numel, 1))

    def log_prob(theta, x, onehot):
        out = forward_functional(model, {**theta, **constants}, x.unsqueeze(0), task_label)
        return (out.to(accumulation_dtype(out)).log_softmax(-1)[0] * onehot).sum()

    per_sample_grad = vmap(grad(log_prob), in_dims=(None, 0, 0))
    total = zero_sums(params)
    count = 0
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            for xs, ys in zip(x.split(chunk), y.split(chunk)):
                with torch.no_grad():
                    probs = _forward(model, xs, task_label)
                    probs = probs.to(accumulation_dtype(probs)).softmax(-1)
                n_classes = probs.shape[-1]
                if estimate == "exact":
                    terms = [(c, probs[:, c]) for c in range(n_classes) if probs[:, c].max() > 0]
                else:
                    labels = ys if estimate == "empirical" else torch.multinomial(
                        probs, 1, generator=generator).squeeze(1)
                    terms = [(labels, torch.ones_like(probs[:, 0]))]
                for label, weight in terms:
                    if isinstance(label, int):
                        label = torch.full_like(ys, label)
                    onehot = F.one_hot(label.long(), n_classes).to(probs.dtype)
                    with autocast_off(xs.device):  # see per_sample.generic_batch_sums
                        grads = per_sample_grad(params, xs, onehot)
                    for n, g in grads.items():
                        w = weight.view((-1,) + (1,) * (g.dim() - 1))
                        total[n] += (w.to(total[n].dtype) * g.to(total[n].dtype).pow(2)).sum(0)
                count += xs.shape[0]
    finally:
        model.train(was_training)
    return total, count


class DropTransfer:
    """Forward hook on a ``Linear``/``Conv`` layer: dropout toward ``theta_{k-1}``.

    In training mode the layer's output ``h = layer(x; theta)`` becomes
    ``h_prev + dropout_p(h - h_prev)`` with ``h_prev = layer(x; theta_{k-1})``: each output
    node ``i`` (per sample) uses ``theta_{k-1,i}`` when dropped and
    ``theta_{k,i}/(1-p) - p/(1-p) theta_{k-1,i}`` otherwise. With no ``theta_{k-1}``
    (``weight=None``) the zero point is 0: ordinary dropout on the layer's output.
    """

    def __init__(self, p: float, weight: Tensor | None, bias: Tensor | None) -> None:
        self.p = p
        self.weight = weight
        self.bias = bias

    def base_output(self, module: nn.Module, x: Tensor) -> Tensor:
        weight = self.weight.to(x)
        bias = None if self.bias is None else self.bias.to(x)
        if isinstance(module, nn.Linear):
            return F.linear(x, weight, bias)
        return module._conv_forward(x, weight, bias)

    def __call__(self, module: nn.Module, inputs: tuple, output: Tensor) -> Tensor | None:
        if not module.training or self.p == 0:
            return None
        if self.weight is None:
            return F.dropout(output, self.p, training=True)
        base = self.base_output(module, inputs[0])
        return base + F.dropout(output - base, self.p, training=True)


DROP_TRANSFER_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

