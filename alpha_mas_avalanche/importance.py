"""MAS parameter importance (Aljundi et al., "Memory Aware Synapses", ECCV 2018).

``Omega[ij] = 1/M * sum_k |d ||F(x_k)||^2 / d theta_ij|`` over M unlabeled inputs.
No Avalanche here: a model is called as ``model(x)``, or ``model(x, task_labels)``
when ``task_label`` is given (the signature of Avalanche's ``MultiTaskModule``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader, Dataset

from alpha_mas_avalanche.validation import check_choice, check_positive_int

#: Upper bound on ``chunk x trainable parameters`` per-sample gradient entries
#: held at once by the generic exact path (128 MiB in float32).
PER_SAMPLE_BUDGET = 2**25


def _inputs_of(item: Any) -> Tensor:
    """The input ``x`` of a batch: the batch itself, or its first element."""
    if isinstance(item, (tuple, list)):
        if len(item) == 0:
            raise ValueError("data: got an empty tuple/list as a batch; expected x or (x, ...)")
        item = item[0]
    if not isinstance(item, Tensor):
        raise TypeError(f"data: batches must hold a Tensor input x, got {type(item).__name__}")
    return item


def iterate_input_batches(
    data: Tensor | Dataset | DataLoader | Iterable,
    batch_size: int,
    max_samples: int | None = None,
) -> Iterator[Tensor]:
    """Yield input batches ``x`` from a Tensor, Dataset or DataLoader; labels are dropped.

    At most ``max_samples`` inputs are yielded in total (the first ones, in order).
    """
    if isinstance(data, Tensor):
        batches: Iterable = data.split(batch_size) if data.dim() > 0 else ()
        if data.dim() == 0:
            raise ValueError("data: a Tensor of inputs needs a leading sample dimension")
    elif isinstance(data, DataLoader):
        batches = data
    elif isinstance(data, Dataset):
        batches = DataLoader(data, batch_size=batch_size, shuffle=False)
    elif isinstance(data, Iterable):
        batches = data
    else:
        raise TypeError(
            "data: expected a Tensor of inputs, a torch Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    remaining = math.inf if max_samples is None else max_samples
    for batch in batches:
        if remaining <= 0:
            return
        x = _inputs_of(batch)
        if x.shape[0] > remaining:
            x = x[: int(remaining)]
        remaining -= x.shape[0]
        yield x


def squared_output_norm(output: Tensor) -> Tensor:
    """Per-sample ``||F(x)||^2``: sum of squares over every non-batch dimension."""
    return output.pow(2).flatten(1).sum(1)


def forward(model: nn.Module, x: Tensor, task_label: int | None) -> Tensor:
    """``model(x)``, or ``model(x, task_labels)`` for a multi-head model."""
    if task_label is None:
        return model(x)
    labels = torch.full((x.shape[0],), task_label, dtype=torch.long, device=x.device)
    return model(x, labels)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter for every parameter with ``requires_grad``."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _validate(model, exact, batch_size, max_samples, task_label) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_choice("exact", exact, (True, False))
    check_positive_int("batch_size", batch_size)
    if max_samples is not None:
        check_positive_int("max_samples", max_samples, extra="or None (all samples)")
    if task_label is not None and (
        isinstance(task_label, bool) or not isinstance(task_label, int) or task_label < 0
    ):
        raise ValueError(f"task_label: expected None or an int >= 0, got {task_label!r}")


def mas_importance(
    model: nn.Module,
    data: Tensor | Dataset | DataLoader,
    *,
    task_label: int | None = None,
    exact: bool = True,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """MAS importance of every trainable parameter of ``model`` on the inputs in ``data``.

    Args:
        model: the network ``F``; evaluated in eval mode (BatchNorm statistics and
            dropout fixed), its training mode is restored afterwards.
        data: a Tensor of inputs, a Dataset or a DataLoader whose items are ``x`` or
            tuples whose first element is ``x``. Labels are never read.
        task_label: for a multi-head model, the head to evaluate; the model is then
            called as ``model(x, task_labels)``. Other heads get zero importance.
        exact: ``True`` takes ``|gradient|`` per sample (the paper's definition).
            ``False`` reproduces Avalanche's ``MASPlugin`` approximation: the mean over
            batches of ``|gradient of the batch-mean of ||F(x)||^2|``.
        batch_size: samples per batch when ``data`` is a Tensor or a Dataset (a
            DataLoader keeps its own); the exact path works in chunks of at most this size.
        max_samples: use only the first ``max_samples`` inputs (``None``: all).
        device: where to compute; defaults to the device of the model's parameters.

    Returns:
        name -> importance tensor of the parameter's shape, for trainable parameters.
    """
    _validate(model, exact, batch_size, max_samples, task_label)
    params = trainable_parameters(model)
    if not params:
        raise ValueError("model: has no trainable parameters (requires_grad=True); nothing to weigh")
    if device is None:
        device = next(iter(params.values())).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        batches = iterate_input_batches(data, batch_size, max_samples)
        if exact:
            total, count = _exact_sums(model, params, batches, task_label, device, batch_size)
        else:
            total, count = _batch_approximation_sums(model, params, batches, task_label, device)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("data: holds no samples; importance needs at least one input")
    return {name: t / count for name, t in total.items()}


def _exact_sums(model, params, batches, task_label, device, batch_size):
    """Sum over samples of per-sample |grad ||F(x)||^2| (generic torch.func path)."""
    buffers = dict(model.named_buffers())
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    constants = {**buffers, **frozen}
    numel = sum(p.numel() for p in params.values())
    chunk = max(1, min(batch_size, PER_SAMPLE_BUDGET // max(numel, 1)))

    def sample_objective(theta: dict[str, Tensor], x: Tensor) -> Tensor:
        out = forward_functional(model, {**theta, **constants}, x.unsqueeze(0), task_label)
        return out.pow(2).sum()

    per_sample_grad = vmap(grad(sample_objective), in_dims=(None, 0))
    theta = {n: p.detach() for n, p in params.items()}
    total = {n: torch.zeros_like(p) for n, p in theta.items()}
    count = 0
    for x in batches:
        x = x.to(device)
        for part in x.split(chunk):
            grads = per_sample_grad(theta, part)
            for n, g in grads.items():
                total[n] += g.abs().sum(0)
            count += part.shape[0]
    return total, count


def forward_functional(
    model: nn.Module, tensors: dict[str, Tensor], x: Tensor, task_label: int | None
) -> Tensor:
    """Call ``model`` with its parameters and buffers replaced by ``tensors``."""
    if task_label is None:
        return functional_call(model, tensors, (x,))
    # Avalanche's MultiTaskModule accepts a plain int for a single-task batch,
    # which keeps ``Tensor.item()`` (not allowed under vmap) out of its forward.
    return functional_call(model, tensors, (x, task_label))


def _batch_approximation_sums(model, params, batches, task_label, device):
    """Sum over batches of |grad of the batch mean of ||F(x)||^2| (Avalanche's MASPlugin)."""
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    n_batches = 0
    for x in batches:
        x = x.to(device)
        loss = squared_output_norm(forward(model, x, task_label)).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads):
            if g is not None:
                total[n] += g.abs()
        n_batches += 1
    return total, n_batches
