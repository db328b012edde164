"""Sums over samples of per-sample absolute gradients, ``sum_k |d ||F(x_k)||^2 / d theta|``.

The fast path runs ONE batched forward and backward of ``sum_k ||F(x_k)||^2``. In eval
mode samples do not interact, so the gradient reaching a layer's output row ``k`` is
sample ``k``'s own. From each layer's input ``A`` and output gradient ``G``:

* ``nn.Linear`` (2-D input): sample ``k``'s weight gradient is the outer product
  ``G_k A_k^T`` and ``|a b^T| = |a| |b|^T``, so ``sum_k |G_k A_k^T| = |G|^T |A|``, one
  matmul; bias: ``sum_k |G_k|``.
* ``nn.Conv2d`` (zero padding): every sample's weight gradient at once, as the weight
  gradient of one grouped convolution with the samples stacked as groups; ``abs``, sum
  over samples. Memory is bounded by chunking the samples.
* ``_BatchNorm`` in eval mode with running statistics: per channel, the spatial sums of
  ``G_k * xhat_k`` (weight) and ``G_k`` (bias), ``xhat`` the normalised input.

Every other parameter (other layer types, a layer called more than once per forward, a
parameter shared between layers or also used outside its layer, a Linear on 3-D input, a
layer whose parameters are not exactly its own ``weight`` / ``bias``, such as
``torch.nn.utils.weight_norm``'s ``weight_g`` / ``weight_v``, a ``parametrize``-d layer or
one with forward pre-hooks, ...) takes the generic exact path: ``torch.func.vmap(grad(...))`` over samples, with the other
parameters held constant. Both paths are exact; no layer is ever approximated. If the model
turns out to mix samples within a batch (checked once on the first batch), every parameter
takes the generic path, which forwards each sample alone.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import get_gradient_edge
from torch.func import grad, vmap
from torch.nn.grad import conv2d_weight
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

#: Upper bound on per-sample gradient entries held at once: ``chunk x parameters`` on the
#: generic path, ``chunk x weight size`` on the Conv2d path (128 MiB in float32).
PER_SAMPLE_BUDGET = 2**25

Run = Callable[[Tensor], Tensor]
RunFunctional = Callable[[dict[str, Tensor], Tensor], Tensor]
Sums = dict[str, Tensor]


def squared_output_norm(output: Tensor) -> Tensor:
    """Per-sample ``||F(x)||^2``: sum of squares over every non-batch dimension."""
    return output.pow(2).flatten(1).sum(1)


# ------------------------------------------------------------------ layer rules
def _linear_accepts(module: nn.Linear, inputs: Tensor) -> bool:
    return inputs.dim() == 2


def _linear_sums(module: nn.Linear, inputs: Tensor, grad_out: Tensor, attrs) -> dict[str, Tensor]:
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
    shape = (1, -1) + (1,) * (inputs.dim() - 2)
    sums = {}
    if "weight" in attrs:
        normalised = (inputs - module.running_mean.view(shape)) * torch.rsqrt(
            module.running_var.view(shape) + module.eps
        )
        per_sample = (grad_out * normalised).flatten(2).sum(2) if inputs.dim() > 2 else grad_out * normalised
        sums["weight"] = per_sample.abs().sum(0)
    if "bias" in attrs:
        per_sample = grad_out.flatten(2).sum(2) if inputs.dim() > 2 else grad_out
        sums["bias"] = per_sample.abs().sum(0)
    return sums


@dataclass(frozen=True)
class _Rule:
    accepts: Callable[[Any, Tensor], bool]
    sums: Callable[[Any, Tensor, Tensor, Any], dict[str, Tensor]]


#: The parameter attributes the rules compute; a layer with any other goes generic whole.
_RULE_ATTRS = frozenset({"weight", "bias"})


def _plain_layer(module: nn.Module) -> bool:
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
    nn.Linear.forward: _Rule(_linear_accepts, _linear_sums),
    nn.Conv2d.forward: _Rule(_conv2d_accepts, _conv2d_sums),
    _BatchNorm.forward: _Rule(_batchnorm_accepts, _batchnorm_sums),
}


def fast_rule(module: nn.Module) -> _Rule | None:
    """The fast rule for ``module``'s type, or None (its parameters go generic)."""
    return _RULES.get(type(module).forward)


# ------------------------------------------------------------------- recording
@dataclass
class _Call:
    inputs: Tensor | None
    version: int
    edge: Any  # GradientEdge of the raw output, None when it has no gradient


class _Recorder:
    """Forward hooks that keep each call's input and the gradient edge of its raw output.

    The edge is taken before any later in-place op (``ReLU(inplace=True)``, Avalanche's
    head masking) rewrites the output, so its gradient is the one the layer sees.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.calls: dict[nn.Module, list[_Call]] = {m: [] for m in modules}
        self.active = False
        # prepend: see the raw output even if other hooks replace it
        self._handles = [m.register_forward_hook(self._hook, prepend=True) for m in self.calls]

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self.active:
            return
        inputs = args[0] if len(args) == 1 and isinstance(args[0], Tensor) else None
        edge = None
        if isinstance(output, Tensor) and output.requires_grad:
            edge = get_gradient_edge(output)
        version = inputs._version if inputs is not None else -1
        self.calls[module].append(_Call(inputs, version, edge))

    def start(self) -> None:
        for calls in self.calls.values():
            calls.clear()
        self.active = True

    def stop(self) -> None:
        self.active = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self.calls.clear()


def _parameter_uses(root: Tensor) -> dict[int, int]:
    """``id(leaf) -> number of graph edges into it`` for the autograd graph of ``root``."""
    uses: dict[int, int] = {}
    seen = {root.grad_fn}
    stack = [root.grad_fn]
    while stack:
        for node, _ in stack.pop().next_functions:
            if node is None:
                continue
            leaf = getattr(node, "variable", None)  # AccumulateGrad
            if leaf is not None:
                uses[id(leaf)] = uses.get(id(leaf), 0) + 1
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return uses


# ----------------------------------------------------------------- generic path
def generic_batch_sums(
    model: nn.Module,
    params: Mapping[str, Tensor],
    x: Tensor,
    run_functional: RunFunctional,
    totals: Sums,
    max_chunk: int,
) -> None:
    """Add ``sum_k |grad_k|`` over the samples of ``x`` for ``params`` (exact, ``vmap(grad)``).

    Every other parameter and buffer of ``model`` is held constant.
    """
    constants = {n: b for n, b in model.named_buffers()}
    constants.update({n: p.detach() for n, p in model.named_parameters() if n not in params})
    theta = {n: p.detach() for n, p in params.items()}

    def sample_objective(theta: dict[str, Tensor], sample: Tensor) -> Tensor:
        return run_functional({**theta, **constants}, sample.unsqueeze(0)).pow(2).sum()

    per_sample_grad = vmap(grad(sample_objective), in_dims=(None, 0))
    numel = sum(p.numel() for p in theta.values())
    chunk = max(1, min(max_chunk, PER_SAMPLE_BUDGET // max(numel, 1)))
    for part in x.split(chunk):
        for name, g in per_sample_grad(theta, part).items():
            totals[name] += g.abs().sum(0)


def generic_abs_gradient_sums(
    model: nn.Module,
    params: Mapping[str, Tensor],
    batches: Iterable[Tensor],
    run_functional: RunFunctional,
    max_chunk: int,
) -> tuple[Sums, int]:
    """``sum_k |grad_k|`` of every parameter in ``params`` by the generic path only."""
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for x in batches:
        generic_batch_sums(model, params, x, run_functional, totals, max_chunk)
        count += x.shape[0]
    return totals, count


# -------------------------------------------------------------------- fast path
class _Plan:
    """Modules with a fast rule and the trainable parameters they own directly."""

    def __init__(self, model: nn.Module, params: Mapping[str, Tensor]) -> None:
        name_of = {id(p): n for n, p in params.items()}
        owners: dict[int, int] = {}
        for module in model.modules():
            for p in module._parameters.values():
                if p is not None and id(p) in name_of:
                    owners[id(p)] = owners.get(id(p), 0) + 1
        self.rules: dict[nn.Module, _Rule] = {}
        self.names: dict[nn.Module, dict[str, str]] = {}  # module -> attr -> parameter name
        for module in model.modules():
            rule = fast_rule(module)
            if rule is None or not _plain_layer(module):
                continue
            names = {
                attr: name_of[id(p)]
                for attr, p in module._parameters.items()
                if p is not None and id(p) in name_of and owners[id(p)] == 1
            }
            if names:
                self.rules[module], self.names[module] = rule, names


def _samples_independent(run: Run, x: Tensor, batched_output: Tensor) -> bool:
    """Is sample 0's output the same alone as within the batch (no batch statistics etc.)?"""
    with torch.no_grad():
        alone = run(x[:1])
    reference = batched_output[:1].detach()
    if alone.shape != reference.shape:
        return False
    if not bool(torch.isfinite(reference).all()):
        # no tolerance to compare with; the non-finite importance that follows is refused
        # (with the parameter named) by the penalty, whichever path computes it
        return True
    tolerance = 1e-3 * float(reference.abs().mean()) + torch.finfo(reference.dtype).tiny
    return bool(torch.allclose(alone, reference, rtol=1e-3, atol=tolerance))


def fast_abs_gradient_sums(
    model: nn.Module,
    params: Mapping[str, Tensor],
    batches: Iterable[Tensor],
    run: Run,
    run_functional: RunFunctional,
    max_chunk: int,
) -> tuple[Sums, int]:
    """``sum_k |grad_k|`` for every parameter in ``params``: fast layer rules where they
    apply, the generic path for the rest (see the module docstring).

    ``run(x)`` is the batched forward; ``run_functional(tensors, x)`` the same call with
    parameters and buffers replaced (for the generic path). ``model`` must be in eval mode.
    """
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    plan = _Plan(model, params)
    recorder = _Recorder(plan.rules)
    independent: bool | None = None
    count = 0
    try:
        for x in batches:
            if independent is False:
                generic_batch_sums(model, params, x, run_functional, totals, max_chunk)
                count += x.shape[0]
                continue
            recorder.start()
            try:
                with torch.enable_grad():
                    output = run(x)
            finally:
                recorder.stop()
            if independent is None and x.shape[0] > 1:
                independent = _samples_independent(run, x, output)
                if not independent:
                    generic_batch_sums(model, params, x, run_functional, totals, max_chunk)
                    count += x.shape[0]
                    continue
            _fast_batch(model, params, plan, recorder, x, output, run_functional, totals, max_chunk)
            count += x.shape[0]
    finally:
        recorder.remove()
    return totals, count


def _fast_batch(model, params, plan, recorder, x, output, run_functional, totals, max_chunk):
    objective = output.pow(2).sum()  # sum_k ||F(x_k)||^2
    if not objective.requires_grad:
        return  # no parameter influences the output
    uses = _parameter_uses(objective)
    n = x.shape[0]
    fast = []
    covered = set()
    for module, calls in recorder.calls.items():
        if len(calls) != 1:
            continue  # not called (e.g. another task's head) or called more than once
        call, names = calls[0], plan.names[module]
        if (
            call.edge is None
            or call.inputs is None
            or call.inputs._version != call.version  # input changed in place afterwards
            or call.inputs.shape[0] != n
            or not plan.rules[module].accepts(module, call.inputs)
            or any(uses.get(id(params[name]), 0) != 1 for name in names.values())
        ):
            continue
        fast.append((module, call))
        covered.update(names.values())
    generic = {
        name: p for name, p in params.items() if name not in covered and uses.get(id(p), 0) > 0
    }
    if fast:
        grads = torch.autograd.grad(objective, [c.edge for _, c in fast], allow_unused=True)
        with torch.no_grad():
            for (module, call), grad_out in zip(fast, grads):
                if grad_out is None:
                    continue
                names = plan.names[module]
                sums = plan.rules[module].sums(module, call.inputs.detach(), grad_out, names)
                for attr, value in sums.items():
                    totals[names[attr]] += value
    if generic:
        generic_batch_sums(model, generic, x, run_functional, totals, max_chunk)
