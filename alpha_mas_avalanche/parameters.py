"""Parameters as the plugins see them: the module under DDP / DataParallel / torch.compile
wrappers, its parameter names, device and dtype, and grown layers. No Avalanche here.

Every plugin keys its state by the names of the *unwrapped* module's parameters, so a state
saved from a DDP-wrapped (``module.``) or compiled (``_orig_mod.``) model means the same
parameters beside the plain model, and the other way round.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

#: Name prefixes the wrappers add: DDP / DataParallel's ``module.``, torch.compile's ``_orig_mod.``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside any nesting of ``DistributedDataParallel``, ``DataParallel`` and
    ``torch.compile``'s ``OptimizedModule``: what the plugins read, evaluate and copy."""
    while True:
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
        elif isinstance(model._modules.get("_orig_mod"), nn.Module) and \
                type(model).__name__ == "OptimizedModule":
            model = model._modules["_orig_mod"]
        else:
            return model


def stripped_name(name: str) -> str:
    """``name`` without the leading wrapper prefixes (``module.``, ``_orig_mod.``)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix):], True
    return name


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter for every parameter with ``requires_grad``, named as in the
    unwrapped module (see :func:`unwrap`)."""
    return {n: p for n, p in unwrap(model).named_parameters() if p.requires_grad}


def match_names(stored: Iterable[str], model: nn.Module, who: str) -> dict[str, str]:
    """``{stored name: the model's name}`` for state keyed by ``stored`` names: a name of the
    unwrapped model's parameters is kept, one with wrapper prefixes (a state saved under DDP
    or torch.compile) loses them. Raises ValueError naming the names that match no parameter."""
    names = {n for n, _ in unwrap(model).named_parameters()}
    mapping, unknown = {}, []
    for name in stored:
        if name in names:
            mapping[name] = name
        elif stripped_name(name) in names:
            mapping[name] = stripped_name(name)
        else:
            unknown.append(name)
    if unknown:
        shown = sorted(names)
        raise ValueError(
            f"{who}: the loaded state names parameter(s) {sorted(unknown)[:6]} that "
            f"{type(unwrap(model)).__name__} does not have (its parameters: {shown[:6]}"
            f"{', ...' if len(shown) > 6 else ''}); load a state saved with this model "
            "(wrapped in DDP or torch.compile or not: their 'module.' and '_orig_mod.' "
            "prefixes are removed)"
        )
    return mapping


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """The device of ``model``'s parameters, where every computation on it runs and its
    data is moved to. ``device``, if given, must name that device (``"cuda"`` matches any
    CUDA device): it never moves the model."""
    tensors = [*model.parameters(), *model.buffers()]
    own = tensors[0].device if tensors else torch.device("cpu")
    if device is None:
        return own
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected None or a torch device, got {device!r}") from err
    if wanted.type != own.type or (wanted.index is not None and wanted.index != own.index):
        raise ValueError(
            f"device: {str(wanted)!r}, but the model is on {str(own)!r}; computations run "
            "where the model is, so move the model (model.to(device)) or pass device=None"
        )
    return own


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 if none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def leading_block(target: Tensor, stored: Tensor, name: str = "a parameter") -> Tensor:
    """The view of ``target`` that ``stored`` fills: all of it, or the old units of a layer
    that grew (new units are appended). Raises ValueError if ``stored`` does not fit."""
    if stored.dim() != target.dim() or any(s > t for s, t in zip(stored.shape, target.shape)):
        raise ValueError(
            f"{name} changed shape from {tuple(stored.shape)} to {tuple(target.shape)}; "
            "only growth along existing dimensions is supported"
        )
    return target[tuple(slice(0, s) for s in stored.shape)]


def pad_to(stored: Tensor, like: Tensor, name: str = "a parameter") -> Tensor:
    """``stored`` on ``like``'s device and dtype, zero-padded to ``like``'s shape (a grown
    layer's new units get zeros); the grown-layer padding of every plugin's state."""
    if stored.shape == like.shape:
        return stored.to(like)
    out = torch.zeros_like(like, memory_format=torch.contiguous_format, requires_grad=False)
    leading_block(out, stored, name).copy_(stored)
    return out
