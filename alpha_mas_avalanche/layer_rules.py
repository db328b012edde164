"""Exact per-layer rules for ``sum_k |per-sample gradient|`` from a layer's input ``A`` and
output gradient ``G`` (see :mod:`alpha_mas_avalanche.per_sample`): ``nn.Linear``,
``nn.Conv2d`` (zero padding) and ``_BatchNorm`` in eval mode. Sums are computed in
:func:`~alpha_mas_avalanche.precision.accumulation_dtype` of the layer's weight.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.grad import conv2d_weight
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from alpha_mas_avalanche.precision import accumulation_dtype

#: Upper bound on per-sample gradient entries held at once: ``chunk x parameters`` on the
#: generic path, ``chunk x weight size`` on the Conv2d path (128 MiB in float32).
PER_SAMPLE_BUDGET = 2**25


def _common_precision(module: nn.Module, inputs: Tensor, grad_out: Tensor) -> tuple[Tensor, Tensor]:
    """The layer's input and output gradient in one accumulation dtype: under autocast
    the input is float32 and the gradient bfloat16/float16 (the rules mix them)."""
    dtype = accumulation_dtype(module.weight if module.weight is not None else inputs)
    return inputs.to(dtype), grad_out.to(dtype)


def _linear_accepts(module: nn.Linear, inputs: Tensor) -> bool:
    return inputs.dim() == 2


def _linear_sums(module: nn.Linear, inputs: Tensor, grad_out: Tensor, attrs) -> dict[str, Tensor]:
    inputs, grad_out = _common_precision(module, inputs, grad_out)
    abs_grad = grad_out.abs()
    sums = {}
    if "weight" in attrs:
        sums["weight"] = abs_grad.t().mm(inputs.abs())
    if "bias" in attrs:
        sums["bias"] = abs_grad.sum(0)
    return sums


def _conv2d_padding(module: nn.Conv2d) -> tuple[int, int] | None:
    """Symmetric zero padding of ``module`` as ints, or None when unfold cannot express it."""
    if module.padding_mode != "zeros":
        return None
    if module.padding == "valid":
        return (0, 0)
    if module.padding == "same":
        totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
        if any(t % 2 for t in totals):  # torch pads asymmetrically then
            return None
        return (totals[0] // 2, totals[1] // 2)
    return tuple(module.padding)


def _conv2d_accepts(module: nn.Conv2d, inputs: Tensor) -> bool:
    return inputs.dim() == 4 and _conv2d_padding(module) is not None


def _conv2d_sums(module: nn.Conv2d, inputs: Tensor, grad_out: Tensor, attrs) -> dict[str, Tensor]:
    inputs, grad_out = _common_precision(module, inputs, grad_out)
    sums = {}
    if "bias" in attrs:
        sums["bias"] = grad_out.flatten(2).sum(2).abs().sum(0)
    if "weight" in attrs:
        weight, groups = module.weight, module.groups
        step = max(1, PER_SAMPLE_BUDGET // weight.numel())
        total = torch.zeros_like(weight, dtype=grad_out.dtype)
        for start in range(0, inputs.shape[0], step):
            a, g = inputs[start : start + step], grad_out[start : start + step]
            n = a.shape[0]
            # Samples stacked as channel groups: one grouped convolution's weight gradient
            # holds every sample's own weight gradient.
            per_sample = conv2d_weight(
                a.reshape(1, n * a.shape[1], *a.shape[2:]),
                (n * weight.shape[0], *weight.shape[1:]),
                g.reshape(1, n * g.shape[1], *g.shape[2:]),
                stride=module.stride, padding=_conv2d_padding(module),
                dilation=module.dilation, groups=n * groups,
            )
            total += per_sample.abs_().view(n, *weight.shape).sum(0)
        sums["weight"] = total
    return sums


def _batchnorm_accepts(module: _BatchNorm, inputs: Tensor) -> bool:
    return (
        not module.training
        and module.running_mean is not None
        and module.running_var is not None
        and inputs.dim() >= 2
    )


def _batchnorm_sums(module: _BatchNorm, inputs: Tensor, grad_out: Tensor, attrs) -> dict[str, Tensor]:
    inputs, grad_out = _common_precision(module, inputs, grad_out)
    shape = (1, -1) + (1,) * (inputs.dim() - 2)
    sums = {}
    if "weight" in attrs:
        mean, var = module.running_mean.to(inputs.dtype), module.running_var.to(inputs.dtype)
        normalised = (inputs - mean.view(shape)) * torch.rsqrt(var.view(shape) + module.eps)
        per_sample = (grad_out * normalised).flatten(2).sum(2) if inputs.dim() > 2 else grad_out * normalised
        sums["weight"] = per_sample.abs().sum(0)
    if "bias" in attrs:
        per_sample = grad_out.flatten(2).sum(2) if inputs.dim() > 2 else grad_out
        sums["bias"] = per_sample.abs().sum(0)
    return sums


@dataclass(frozen=True)
class Rule:
    accepts: Callable[[Any, Tensor], bool]
    sums: Callable[[Any, Tensor, Tensor, Any], dict[str, Tensor]]


#: The parameter attributes the rules compute; a layer with any other goes generic whole.
_RULE_ATTRS = frozenset({"weight", "bias"})


def plain_layer(module: nn.Module) -> bool:
    """Are ``module``'s parameters exactly its own ``weight`` / ``bias``, used as they are?

    ``weight_norm`` (hook-based) keeps ``weight_g`` / ``weight_v`` and recomputes ``weight``
    in a forward pre-hook; ``parametrize`` moves the weight into a submodule; any forward
    pre-hook may replace the weight. Such layers take the generic path.
    """
    if parametrize.is_parametrized(module) or module._forward_pre_hooks:
        return False
    own = {attr: p for attr, p in module._parameters.items() if p is not None}
    return set(own) <= _RULE_ATTRS and all(getattr(module, attr) is p for attr, p in own.items())


#: Fast rules by ``forward`` implementation: subclasses that keep the forward qualify.
_RULES = {
    nn.Linear.forward: Rule(_linear_accepts, _linear_sums),
    nn.Conv2d.forward: Rule(_conv2d_accepts, _conv2d_sums),
    _BatchNorm.forward: Rule(_batchnorm_accepts, _batchnorm_sums),
}


def fast_rule(module: nn.Module) -> Rule | None:
    """The fast rule for ``module``'s type, or None (its parameters go generic)."""
    return _RULES.get(type(module).forward)

