"""MAS parameter importance (Aljundi et al., "Memory Aware Synapses", ECCV 2018).

``Omega[ij] = 1/M * sum_k |d ||F(x_k)||^2 / d theta_ij|`` over M unlabeled inputs.
No Avalanche here: a model is called as ``model(x)``, or ``model(x, task_labels)``
when ``task_label`` is given (the signature of Avalanche's ``MultiTaskModule``).
"""
from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import DataLoader, Dataset

from alpha_mas_avalanche.parameters import model_device, trainable_parameters, unwrap
from alpha_mas_avalanche.per_sample import (  # noqa: F401 (re-exported)
    PER_SAMPLE_BUDGET,
    fast_abs_gradient_sums,
    generic_abs_gradient_sums,
    squared_output_norm,
    zero_sums,
)
from alpha_mas_avalanche.validation import check_choice, check_positive_int

#: How ``_importance`` sums over samples: exact with fast layer rules (the default of
#: ``exact=True``), exact by the generic ``torch.func`` path only, or the batch approximation.
METHODS = ("fast", "generic", "batch")


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
    loader_options: dict[str, Any] | None = None,
) -> Iterator[Tensor]:
    """Yield input batches ``x`` from a Tensor, Dataset or DataLoader; labels are dropped.

    At most ``max_samples`` inputs are yielded in total (the first ones, in order).
    ``loader_options`` (e.g. ``num_workers``, ``pin_memory``) go to the DataLoader made
    for a Dataset.
    """
    if isinstance(data, Tensor):
        batches: Iterable = data.split(batch_size) if data.dim() > 0 else ()
        if data.dim() == 0:
            raise ValueError("data: a Tensor of inputs needs a leading sample dimension")
    elif isinstance(data, DataLoader):
        batches = data
    elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        # map-style datasets, Avalanche's included (they are not torch Dataset subclasses)
        collate = getattr(data, "collate_fn", None)
        # its own generator: creating a loader's iterator draws a seed, and importance
        # estimation must leave the global RNG (hence training order) untouched
        batches = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate,
                             generator=torch.Generator(), **(loader_options or {}))
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


def forward(model: nn.Module, x: Tensor, task_label: int | None) -> Tensor:
    """``model(x)``, or ``model(x, task_labels)`` for a multi-head model."""
    if task_label is None:
        return model(x)
    labels = torch.full((x.shape[0],), task_label, dtype=torch.long, device=x.device)
    return model(x, labels)


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
        exact: ``True`` takes ``|gradient|`` per sample (the paper's definition), at about
            the cost of one batched backward: Linear, Conv2d and BatchNorm parameters by
            exact per-layer rules, any other parameter by ``torch.func`` per-sample
            gradients (see :mod:`alpha_mas_avalanche.per_sample`). ``False`` reproduces Avalanche's ``MASPlugin`` approximation: the mean over
            batches of ``|gradient of the batch-mean of ||F(x)||^2|``.
        batch_size: samples per batch when ``data`` is a Tensor or a Dataset (a
            DataLoader keeps its own); the exact path works in chunks of at most this size.
        max_samples: use only the first ``max_samples`` inputs (``None``: all).
        device: None (the default) or the device the model is on, checked: the
            computation runs on the model's device and the inputs are moved there
            (see :func:`~alpha_mas_avalanche.parameters.model_device`).

    Under ``torch.autocast`` the forward runs in the autocast precision and the sums are
    accumulated in float32 (float64 for float64 parameters), autocast off.
    Gradients are enabled for the computation whatever the caller's grad mode, so calling
    it under ``torch.no_grad()`` gives the same result; under ``torch.inference_mode()``
    it raises a RuntimeError saying so.

    A model wrapped in DDP, DataParallel or ``torch.compile`` is evaluated unwrapped
    (eagerly, with no collective), its parameters named as in the unwrapped module.

    Returns:
        name -> importance tensor of the parameter's shape, for trainable parameters,
        in float32 (float64 for float64 parameters).
    """
    sums, count = importance_sums(model, data, task_label=task_label, exact=exact,
                                  batch_size=batch_size, max_samples=max_samples, device=device)
    return {name: t / count for name, t in sums.items()}


def importance_sums(
    model: nn.Module,
    data: Tensor | Dataset | DataLoader,
    *,
    task_label: int | None = None,
    exact: bool = True,
    batch_size: int = 256,
    max_samples: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[dict[str, Tensor], int]:
    """``(sum over the inputs of the per-sample terms, number of inputs)``: the parts of
    :func:`mas_importance` (same arguments) that add up across the ranks of a
    data-parallel job."""
    _validate(model, exact, batch_size, max_samples, task_label)
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "mas_importance: called under torch.inference_mode(), where no gradient can be "
            "computed; call it (or train, or consolidate) outside inference_mode "
            "(torch.no_grad() is fine: the importance enables gradients itself)"
        )
    return _importance_sums(
        model, data, method="fast" if exact else "batch", task_label=task_label,
        batch_size=batch_size, max_samples=max_samples, device=device,
    )


def _importance(model, data, *, method, task_label, batch_size, max_samples, device):
    """``mas_importance`` after validation; ``method`` is one of ``METHODS`` (tests use
    ``"generic"`` as the reference for the fast layer rules)."""
    sums, count = _importance_sums(model, data, method=method, task_label=task_label,
                                   batch_size=batch_size, max_samples=max_samples,
                                   device=device)
    return {name: t / count for name, t in sums.items()}


def _importance_sums(model, data, *, method, task_label, batch_size, max_samples, device):
    """``(sums, count)`` of ``_importance``; raises ValueError when ``data`` is empty."""
    check_choice("method", method, METHODS)
    model = unwrap(model)
    params = trainable_parameters(model)
    if not params:
        raise ValueError("model: has no trainable parameters (requires_grad=True); nothing to weigh")
    device = model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        # inference tensors (made under inference_mode) cannot be saved for backward
        batches = (x.to(device).clone() if x.is_inference() else x.to(device, non_blocking=True)
                   for x in iterate_input_batches(data, batch_size, max_samples,
                                                  _loader_options(device)))
        with torch.enable_grad():  # whatever the caller's grad mode
            total, count = _sums(model, params, batches, method, task_label, batch_size)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("data: holds no samples; importance needs at least one input")
    return total, count


def _loader_options(device: torch.device) -> dict[str, Any]:
    """For a Dataset on CUDA: pinned memory, and 2 loading processes where this process may
    start them (not inside a daemon process)."""
    if device.type != "cuda":
        return {}
    workers = 0 if multiprocessing.current_process().daemon else 2
    return {"pin_memory": True, "num_workers": workers}


def _sums(model, params, batches, method, task_label, batch_size):
    """``(sum over samples, sample count)`` by ``method``."""
    if method == "fast":
        return fast_abs_gradient_sums(
            model, params, batches,
            # one int label, as on the generic path: Avalanche's single-task fast path
            run=lambda x: model(x) if task_label is None else model(x, task_label),
            run_functional=lambda t, x: forward_functional(model, t, x, task_label),
            max_chunk=batch_size,
        )
    if method == "generic":
        return generic_abs_gradient_sums(
            model, params, batches,
            run_functional=lambda t, x: forward_functional(model, t, x, task_label),
            max_chunk=batch_size,
        )
    return _batch_approximation_sums(model, params, batches, task_label)


def forward_functional(
    model: nn.Module, tensors: dict[str, Tensor], x: Tensor, task_label: int | None
) -> Tensor:
    """Call ``model`` with its parameters and buffers replaced by ``tensors``."""
    if task_label is None:
        return functional_call(model, tensors, (x,))
    # Avalanche's MultiTaskModule accepts a plain int for a single-task batch,
    # which keeps ``Tensor.item()`` (not allowed under vmap) out of its forward.
    return functional_call(model, tensors, (x, task_label))


def _batch_approximation_sums(model, params, batches, task_label):
    """Sum over batches of |grad of the batch mean of ||F(x)||^2| (Avalanche's MASPlugin)."""
    total = zero_sums(params)
    n_batches = 0
    for x in batches:
        loss = squared_output_norm(forward(model, x, task_label)).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads):
            if g is not None:
                total[n] += g.abs()
        n_batches += 1
    return total, n_batches
