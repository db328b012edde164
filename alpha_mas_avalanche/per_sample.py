"""Sums over samples of per-sample absolute gradients, ``sum_k |d ||F(x_k)||^2 / d theta|``.

The fast path runs ONE batched forward and backward of ``sum_k ||F(x_k)||^2``. In eval
mode samples do not interact, so the gradient reaching a layer's output row ``k`` is
sample ``k``'s own. From each layer's input ``A`` and output gradient ``G``
(the rules: :mod:`alpha_mas_avalanche.layer_rules`):

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
turns out to mix samples within a batch (checked once, on the first batch, in full precision:
autocast and TF32 off), every parameter takes the generic path, which forwards each sample
alone. A parameter that takes the generic path is named once in a :class:`GenericPathWarning`.

Mixed precision: under ``torch.autocast`` the fast path's forward runs as the caller set it
up, and every sum is accumulated in float32 (float64 for float64 parameters), with autocast
off; the generic path runs with autocast off (``torch.func`` cannot batch autocast's mixed
BatchNorm inputs), i.e. in the parameters' own precision.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import get_gradient_edge
from torch.func import grad, vmap

from alpha_mas_avalanche.layer_rules import PER_SAMPLE_BUDGET, Rule, fast_rule, plain_layer
from alpha_mas_avalanche.precision import (
    accumulation_dtype,
    autocast_off,
    full_precision,
    zero_sums,
)

Run = Callable[[Tensor], Tensor]
RunFunctional = Callable[[dict[str, Tensor], Tensor], Tensor]
Sums = dict[str, Tensor]


class GenericPathWarning(UserWarning):
    """Parameters whose per-sample sums take the slower generic path (still exact)."""


def squared_output_norm(output: Tensor) -> Tensor:
    """Per-sample ``||F(x)||^2``: sum of squares over every non-batch dimension, in float32
    (float64 for a float64 output) whatever precision produced ``output``."""
    return output.to(accumulation_dtype(output)).pow(2).flatten(1).sum(1)


# ------------------------------------------------------------------- recording
@dataclass
class _Call:
    inputs: Tensor | None
    version: int
    edge: Any  # GradientEdge of the raw output, None when it has no gradient


class _Recorder:
    """Forward hooks that keep each call's input and the gradient edge of its raw output.

    The edge is taken before any later in-place op (``ReLU(inplace=True)``, Avalanche's
    head masking) rewrites the output, so its gradient is the one the layer sees. The hooks
    exist only between :meth:`start` and :meth:`stop` (around the importance's own eager
    forward), so a compiled model's training steps never meet them: no graph break, no
    recompilation.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.calls: dict[nn.Module, list[_Call]] = {m: [] for m in modules}
        self._handles: list = []

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        inputs = args[0] if len(args) == 1 and isinstance(args[0], Tensor) else None
        edge = None
        if isinstance(output, Tensor) and output.requires_grad:
            edge = get_gradient_edge(output)
        version = inputs._version if inputs is not None else -1
        self.calls[module].append(_Call(inputs, version, edge))

    def start(self) -> None:
        for calls in self.calls.values():
            calls.clear()
        # prepend: see the raw output even if other hooks replace it
        self._handles = [m.register_forward_hook(self._hook, prepend=True) for m in self.calls]

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def remove(self) -> None:
        self.stop()
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
        return squared_output_norm(run_functional({**theta, **constants}, sample.unsqueeze(0))).sum()

    per_sample_grad = vmap(grad(sample_objective), in_dims=(None, 0))
    numel = sum(p.numel() for p in theta.values())
    chunk = max(1, min(max_chunk, PER_SAMPLE_BUDGET // max(numel, 1)))
    for part in x.split(chunk):
        with autocast_off(x.device):  # torch.func's batch_norm rule rejects autocast's mix
            grads = per_sample_grad(theta, part)
        for name, g in grads.items():
            totals[name] += g.abs().sum(0, dtype=totals[name].dtype)


def generic_abs_gradient_sums(
    model: nn.Module,
    params: Mapping[str, Tensor],
    batches: Iterable[Tensor],
    run_functional: RunFunctional,
    max_chunk: int,
) -> tuple[Sums, int]:
    """``sum_k |grad_k|`` of every parameter in ``params`` by the generic path only."""
    totals = zero_sums(params)
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
        self.rules: dict[nn.Module, Rule] = {}
        self.names: dict[nn.Module, dict[str, str]] = {}  # module -> attr -> parameter name
        for module in model.modules():
            rule = fast_rule(module)
            if rule is None or not plain_layer(module):
                continue
            names = {
                attr: name_of[id(p)]
                for attr, p in module._parameters.items()
                if p is not None and id(p) in name_of and owners[id(p)] == 1
            }
            if names:
                self.rules[module], self.names[module] = rule, names


#: Relative tolerance of the sample-independence check, in units of the output dtype's
#: machine epsilon (at least 1e-3): float32 1e-3, float16 7.8e-3, bfloat16 6.3e-2.
INDEPENDENCE_EPS = 8


def samples_independent(run: Run, x: Tensor) -> bool:
    """Is sample 0's output the same alone as within the batch ``x`` (no batch statistics
    etc.)? Both forwards run in full precision (autocast and TF32 off, see
    :func:`full_precision`), compared with a tolerance tied to the output's dtype, so that
    reduced precision alone never reads as samples interacting."""
    with torch.no_grad(), full_precision(x.device):
        reference = run(x)[:1]
        alone = run(x[:1])
    if alone.shape != reference.shape:
        return False
    if not bool(torch.isfinite(reference).all()):
        # no tolerance to compare with; the non-finite importance that follows is refused
        # (with the parameter named) by the penalty, whichever path computes it
        return True
    finfo = torch.finfo(reference.dtype)
    rtol = max(1e-3, INDEPENDENCE_EPS * finfo.eps)
    tolerance = rtol * float(reference.abs().mean()) + finfo.tiny
    return bool(torch.allclose(alone, reference, rtol=rtol, atol=tolerance))


class AbsGradientSums:
    """``sum_k |grad_k|`` accumulator for one model and parameter set: fast layer rules
    where they apply, the generic path for the rest (see the module docstring).

    The plan (which layer takes which rule) and the forward hooks are built once, at
    construction; whether samples interact is checked once, on the first batch of more
    than one sample (or by :meth:`check_independence`). A parameter taking the generic path
    is named once in a :class:`GenericPathWarning`. Call :meth:`close` to remove the hooks.

    ``run(x)`` is the batched forward; ``run_functional(tensors, x)`` the same call with
    parameters and buffers replaced (for the generic path). ``model`` must be in eval mode
    when :meth:`add` is called.
    """

    def __init__(self, model: nn.Module, params: Mapping[str, Tensor], run: Run,
                 run_functional: RunFunctional, max_chunk: int) -> None:
        self.model, self.params = model, dict(params)
        self.run, self.run_functional, self.max_chunk = run, run_functional, max_chunk
        self.plan = _Plan(model, self.params)
        self.recorder = _Recorder(self.plan.rules)
        self.independent: bool | None = None
        self._announced: set[str] = set()

    def zeros(self) -> Sums:
        return zero_sums(self.params)

    def check_independence(self, x: Tensor) -> bool:
        """Decide once, on ``x`` (more than one sample), whether samples interact."""
        if self.independent is None and x.shape[0] > 1:
            self.independent = samples_independent(self.run, x)
            if not self.independent:
                self._announce(self.params, "the model mixes samples within a batch (sample 0's "
                               "output differs alone and in the batch), so each sample is "
                               "forwarded alone")
        return self.independent is not False

    def add(self, x: Tensor, totals: Sums) -> None:
        """Add the sums over the samples of ``x`` to ``totals``."""
        if not self.check_independence(x):
            generic_batch_sums(self.model, self.params, x, self.run_functional, totals,
                               self.max_chunk)
            return
        self.recorder.start()
        try:
            with torch.enable_grad():
                output = self.run(x)
        finally:
            self.recorder.stop()
        self._fast_batch(x, output, totals)

    def close(self) -> None:
        self.recorder.remove()

    def _announce(self, names: Iterable[str], why: str) -> None:
        new = sorted(set(names) - self._announced)
        if new:
            self._announced.update(new)
            warnings.warn(f"MAS importance: parameter(s) {new} take the generic per-sample path "
                          f"(exact, slower): {why}", GenericPathWarning, stacklevel=4)

    def _fast_batch(self, x: Tensor, output: Tensor, totals: Sums) -> None:
        objective = squared_output_norm(output).sum()  # sum_k ||F(x_k)||^2
        if not objective.requires_grad:
            return  # no parameter influences the output
        params, plan = self.params, self.plan
        uses = _parameter_uses(objective)
        n = x.shape[0]
        fast = []
        covered = set()
        for module, calls in self.recorder.calls.items():
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
            with torch.no_grad(), autocast_off(x.device):
                for (module, call), grad_out in zip(fast, grads):
                    if grad_out is None:
                        continue
                    names = plan.names[module]
                    sums = plan.rules[module].sums(module, call.inputs.detach(), grad_out, names)
                    for attr, value in sums.items():
                        totals[names[attr]] += value
        if generic:
            self._announce(generic, "no exact per-layer rule applies to them (a layer type "
                           "without a rule, a parameter shared or used more than once, or an "
                           "input changed in place)")
            generic_batch_sums(self.model, generic, x, self.run_functional, totals, self.max_chunk)


def fast_abs_gradient_sums(
    model: nn.Module,
    params: Mapping[str, Tensor],
    batches: Iterable[Tensor],
    run: Run,
    run_functional: RunFunctional,
    max_chunk: int,
) -> tuple[Sums, int]:
    """``sum_k |grad_k|`` for every parameter in ``params`` over all ``batches`` with one
    :class:`AbsGradientSums`; returns the sums and the sample count."""
    sums = AbsGradientSums(model, params, run, run_functional, max_chunk)
    totals = sums.zeros()
    count = 0
    try:
        for x in batches:
            sums.add(x, totals)
            count += x.shape[0]
    finally:
        sums.close()
    return totals, count
