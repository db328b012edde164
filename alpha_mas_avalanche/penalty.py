"""Alpha weights and the consolidated (constant-memory) AlphaMAS penalty.

The penalty over the tasks learned so far,
``sum_t alpha_t * sum_ij Omega_t[ij] * (theta_ij - anchor_t[ij])^2``, is a quadratic
in ``theta``. With ``alpha_t = scale / S_t`` (``S_t = sum_ij Omega_t[ij]``) it is

    scale * ( sum_ij weight[ij] * (theta_ij - center[ij])^2 + offset )

where ``weight = sum_t Omega_t / S_t`` and ``center`` the weight-averaged anchor. Only
``weight`` and ``center`` (two tensors per parameter), the scalar ``offset`` and the
per-task totals ``S_t`` are stored, so memory does not grow with the number of tasks.
When a task arrives every ``alpha_t`` changes, but only through the common factor
``scale``, which is recomputed from the totals: re-weighting stays exact.

Plain MAS (every ``alpha_t = lambda``) is the same quadratic with ``weight = sum_t Omega_t``
and ``scale = lambda``. With ``anchor="latest"`` the center is replaced by the latest task's
parameters at every task (the offset drops to 0): ``sum_t alpha_t Omega_t (theta - theta*_T)^2``,
the penalty of Aljundi et al.'s MAS reference code (summed Omega, one anchor). No Avalanche
in this module.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from alpha_mas_avalanche.parameters import pad_to
from alpha_mas_avalanche.precision import accumulation_dtype
from alpha_mas_avalanche.validation import check_choice, check_finite_float

LAMBDA_MODES = ("fixed", "per_task")
#: ``per_task``: each task's importance pulls towards that task's parameters; ``latest``: all
#: of them pull towards the latest task's parameters (MAS reference code).
ANCHORS = ("per_task", "latest")


def check_task_total(total: float, task: int | str = "new") -> float:
    """A task's importance total ``S_t`` must be finite and > 0."""
    if not (isinstance(total, (int, float)) and math.isfinite(total) and total > 0):
        raise ValueError(
            f"importance total S_t of task {task} is {total!r}; alpha-scaling needs a finite "
            "total > 0 (a zero total means the outputs do not depend on the parameters)"
        )
    return float(total)


def exact_total(tensors) -> float:
    """The sum of every entry of ``tensors``, accumulated in float64: on the tensors' device
    where it has float64, else (MPS) on the CPU. Read back to the host: never call it in a
    training step."""
    total = []
    for t in tensors:
        t = t.detach()
        if t.device.type == "mps":
            t = t.cpu()
        total.append(float(t.double().sum()))
    return math.fsum(total)


def alpha_weights(totals: Sequence[float], lambda_reg: float) -> list[float]:
    """``alpha_t = lambda / (S_t * sum_t' 1/S_t')``.

    Then ``alpha_t * S_t`` is the same for every task and ``sum_t alpha_t = lambda``.
    Computed with the totals divided by their minimum, so totals spanning many orders
    of magnitude neither overflow nor lose the constraint.
    """
    lambda_reg = check_finite_float("lambda_reg", lambda_reg, positive=True)
    if len(totals) == 0:
        return []
    totals = [check_task_total(s, t) for t, s in enumerate(totals)]
    smallest = min(totals)
    relative_inverse = [smallest / s for s in totals]  # in (0, 1]
    norm = math.fsum(relative_inverse)
    return [lambda_reg * r / norm for r in relative_inverse]


class WorkBuffers:
    """Two parameter-sized work tensors per term, kept from one training step to the next,
    so that adding a quadratic's gradient allocates nothing (on a CPU, allocating those
    temporaries every step cost more than the arithmetic; ``benchmarks/penalty_overhead.py``).
    Not pickled: a checkpoint holds no work tensors."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Tensor, Tensor]] = []

    def pairs(self, thetas: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """One ``(diff, weighted)`` pair per tensor of ``thetas``, matching its shape,
        dtype and device (re-made only where those changed)."""
        del self._pairs[len(thetas):]
        for i, theta in enumerate(thetas):
            if i == len(self._pairs):
                self._pairs.append(_empty_pair(theta))
            elif not _matches(self._pairs[i][0], theta):
                self._pairs[i] = _empty_pair(theta)
        return self._pairs

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._pairs = []


def _empty_pair(like: Tensor) -> tuple[Tensor, Tensor]:
    return torch.empty_like(like, memory_format=torch.contiguous_format), torch.empty_like(
        like, memory_format=torch.contiguous_format)


def _matches(buffer: Tensor, like: Tensor) -> bool:
    return buffer.shape == like.shape and buffer.dtype == like.dtype and buffer.device == like.device


@torch.no_grad()
def add_quadratic_gradient_(thetas: Sequence[Tensor], weights: Sequence[Tensor],
                            centers: Sequence[Tensor], coefficient: float,
                            factor: Tensor | float = 1.0,
                            buffers: WorkBuffers | None = None) -> Tensor:
    """Add ``factor * coefficient * 2 weight (theta - center)`` to each ``theta.grad``
    (creating it where it is None); return ``sum weight (theta - center)^2`` as a 0-d
    float32 tensor (float64 for float64 parameters) on the parameters' device. ``factor``
    may be a tensor on that device (the loss hook's ``d(root)/d(loss)``): it is never read
    on the host. ``buffers`` (kept by the caller between steps) holds the work tensors;
    without it they are allocated per call. The gradient step of every quadratic penalty
    here."""
    work = (buffers or WorkBuffers()).pairs(thetas)
    factors: dict[torch.dtype, Tensor] = {}
    values = []
    for theta, weight, center, (diff, weighted) in zip(thetas, weights, centers, work):
        torch.sub(theta, center, out=diff)
        torch.mul(weight, diff, out=weighted)  # weight (theta - center)
        values.append(_dot(weighted, diff))
        if isinstance(factor, Tensor):  # the factor broadcast on the device
            if theta.dtype not in factors:
                factors[theta.dtype] = factor.detach().to(theta.dtype) * (2.0 * coefficient)
            step = factors[theta.dtype]
        else:
            step = 2.0 * coefficient * factor
        if theta.grad is None:  # after zero_grad(set_to_none=True): no zero fill to add to
            theta.grad = torch.mul(weighted, step)
        elif isinstance(step, Tensor):
            theta.grad.addcmul_(weighted, step)
        else:
            theta.grad.add_(weighted, alpha=step)
    return torch.stack(values).sum()


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``sum a * b`` without an intermediate tensor where BLAS can (float32, float64)."""
    if a.dtype in (torch.float32, torch.float64):
        return torch.vdot(a.reshape(-1), b.reshape(-1))
    dtype = accumulation_dtype(a)
    return (a.to(dtype) * b.to(dtype)).sum()


def zero_penalty(params: Mapping[str, Tensor]) -> Tensor:
    """A 0-d zero on the parameters' device (the value of a penalty with no terms)."""
    first = next(iter(params.values()), None)
    return torch.zeros((), device=None if first is None else first.device)


class ConsolidatedPenalty:
    """``sum_t alpha_t * sum_ij Omega_t[ij] (theta_ij - anchor_t[ij])^2`` in constant memory.

    Args:
        lambda_reg: ``lambda`` > 0.
        lambda_mode: ``"fixed"``: ``sum_t alpha_t = lambda``; ``"per_task"``:
            ``sum_t alpha_t = lambda * number of tasks``. Only used with alpha-scaling.
        alpha_scaling: ``False`` gives plain MAS, every ``alpha_t = lambda``.
        anchor: ``"per_task"`` (each ``anchor_t`` kept, in the weighted center) or
            ``"latest"`` (every term centred on the latest task's anchor), see :data:`ANCHORS`.
    """

    def __init__(
        self, lambda_reg: float = 1.0, lambda_mode: str = "fixed", alpha_scaling: bool = True,
        anchor: str = "per_task",
    ) -> None:
        self.lambda_reg = check_finite_float("lambda_reg", lambda_reg, positive=True)
        self.lambda_mode = check_choice("lambda_mode", lambda_mode, LAMBDA_MODES)
        self.alpha_scaling = check_choice("alpha_scaling", alpha_scaling, (True, False))
        self.anchor = check_choice("anchor", anchor, ANCHORS)
        self.weight: dict[str, Tensor] = {}
        self.center: dict[str, Tensor] = {}
        self.offset = 0.0
        self.totals: list[float] = []
        self._work = WorkBuffers()

    # ---------------------------------------------------------------- weights
    @property
    def num_tasks(self) -> int:
        return len(self.totals)

    @property
    def lambda_sum(self) -> float:
        """``sum_t alpha_t``."""
        if not self.alpha_scaling or self.lambda_mode == "per_task":
            return self.lambda_reg * self.num_tasks
        return self.lambda_reg

    @property
    def alphas(self) -> list[float]:
        """``alpha_t`` for every consolidated task, in order."""
        if not self.alpha_scaling:
            return [self.lambda_reg] * self.num_tasks
        return alpha_weights(self.totals, self.lambda_sum) if self.totals else []

    @property
    def scale(self) -> float:
        """The common factor in front of the stored quadratic (``alpha_t * S_t``)."""
        if not self.totals:
            return 0.0
        if not self.alpha_scaling:
            return self.lambda_reg
        return self.alphas[0] * self.totals[0]

    # ---------------------------------------------------------- consolidation
    def add_task(self, importance: Mapping[str, Tensor], anchor: Mapping[str, Tensor]) -> None:
        """Fold one task's importance ``Omega_t`` and anchor ``theta*_t`` into the quadratic.

        Raises ValueError (and changes nothing) if an importance is negative, NaN or inf,
        or (with alpha-scaling) the task's total is not > 0.
        """
        task = self.num_tasks
        for name, omega in importance.items():
            if name not in anchor:
                raise ValueError(f"anchor: missing parameter {name!r} present in importance")
            if omega.shape != anchor[name].shape:
                raise ValueError(
                    f"importance[{name!r}] has shape {tuple(omega.shape)} but its anchor has "
                    f"{tuple(anchor[name].shape)}"
                )
            if not bool(torch.isfinite(omega).all()) or bool((omega < 0).any()):
                raise ValueError(
                    f"importance of task {task}, parameter {name!r}: holds NaN, inf or negative "
                    "values; refusing to consolidate it"
                )
            if not bool(torch.isfinite(anchor[name]).all()):
                raise ValueError(f"anchor of task {task}, parameter {name!r}: holds NaN or inf")
        total = exact_total(importance.values())
        if self.alpha_scaling:
            check_task_total(total, task)
            factor = 1.0 / total
        else:
            if not math.isfinite(total):
                raise ValueError(f"importance total of task {task} is {total!r}; expected finite")
            factor = 1.0
        new_offset = self.offset
        updates = {}
        for name, omega in importance.items():
            w_new = omega.detach() * factor
            a_new = anchor[name].detach().to(w_new.dtype)
            if name in self.weight and self.anchor == "latest":
                w_old, _ = self._expanded(name, w_new)
                updates[name] = (w_old + w_new, a_new.clone())
            elif name in self.weight:
                w_old, c_old = self._expanded(name, w_new)
                w_sum = w_old + w_new
                positive = w_sum > 0
                safe = torch.where(positive, w_sum, torch.ones_like(w_sum))
                center = torch.where(positive, (w_old * c_old + w_new * a_new) / safe, a_new)
                # w_old (x - c_old)^2 + w_new (x - a_new)^2
                #   = w_sum (x - center)^2 + w_old w_new / w_sum (c_old - a_new)^2
                gap = torch.where(positive, w_old * w_new / safe * (c_old - a_new) ** 2, 0.0)
                new_offset += exact_total([gap])
                updates[name] = (w_sum, center)
            else:
                updates[name] = (w_new.clone(), a_new.clone())
        if self.anchor == "latest":  # one center: no spread of centers to carry
            new_offset = 0.0
        if not math.isfinite(new_offset):
            raise ValueError(f"task {task}: the consolidated penalty would overflow; refusing it")
        for name, (w, c) in updates.items():
            self.weight[name], self.center[name] = w, c
        self.offset = new_offset
        self.totals.append(total)

    def _expanded(self, name: str, like: Tensor) -> tuple[Tensor, Tensor]:
        """Stored weight and center padded with zeros to ``like``'s shape (a grown layer)."""
        where = f"parameter {name!r}"
        return pad_to(self.weight[name], like, where), pad_to(self.center[name], like, where)

    # ----------------------------------------------------------------- value
    def _terms(self, params: Mapping[str, Tensor]):
        for name, weight in self.weight.items():
            if name not in params:
                continue  # a parameter that no longer exists (or is frozen) costs nothing
            p = params[name]
            if weight.shape != p.shape or weight.device != p.device or weight.dtype != p.dtype:
                self.weight[name], self.center[name] = self._expanded(name, p.detach())
            yield p, self.weight[name], self.center[name]

    def value(self, params: Mapping[str, Tensor]) -> Tensor:
        """The penalty at ``params`` (differentiable through autograd)."""
        terms = list(self._terms(params))
        if not terms:
            return zero_penalty(params)
        quad = sum((w * (p - c) ** 2).sum() for p, w, c in terms)
        return self.scale * (quad + self.offset)

    @torch.no_grad()
    def add_gradient_(self, params: Mapping[str, Tensor], factor: Tensor | float = 1.0) -> Tensor:
        """Add ``factor`` times the penalty's gradient ``2 scale weight (theta - center)``
        to each ``.grad`` (creating it where it is None).

        Four eager ops per parameter tensor (difference, weighted difference, the value's
        dot product, the gradient update; 11 passes over the parameters' size, counted by
        ``benchmarks/penalty_passes.py``) and no autograd graph. ``torch._foreach_*`` ops are
        not used: on CPU they ran as a slower per-tensor loop (docs/speed.md). Returns the penalty value at ``params`` (for logging) as a 0-d tensor on the
        parameters' device; nothing is read back to the host.
        """
        terms = list(self._terms(params))
        if not terms:
            return zero_penalty(params)
        scale = self.scale
        quad = add_quadratic_gradient_(*zip(*terms), coefficient=scale, factor=factor,
                                       buffers=self._work)
        return scale * (quad + self.offset)

    @property
    def max_curvature(self) -> float:
        """Largest second derivative of the penalty, ``2 max_ij sum_t alpha_t Omega_t[ij]``
        (0 before the first task). Plain SGD with learning rate ``lr`` and momentum ``beta``
        on the penalty alone diverges when ``lr * max_curvature > 2 (1 + beta)``."""
        if not self.weight:
            return 0.0
        return 2.0 * self.scale * max(float(w.max()) for w in self.weight.values())

    # ------------------------------------------------------------------ state
    def hyperparameters(self) -> dict:
        """The settings a saved state carries, by constructor name."""
        return {"lambda_reg": self.lambda_reg, "lambda_mode": self.lambda_mode,
                "alpha_scaling": self.alpha_scaling, "anchor": self.anchor}

    def parameter_tables(self) -> list[dict[str, Tensor]]:
        """The state's tables keyed by parameter name."""
        return [self.weight, self.center]

    def state_dict(self) -> dict:
        return {
            "lambda_reg": self.lambda_reg,
            "lambda_mode": self.lambda_mode,
            "alpha_scaling": self.alpha_scaling,
            "anchor": self.anchor,
            "weight": {n: t.clone() for n, t in self.weight.items()},
            "center": {n: t.clone() for n, t in self.center.items()},
            "offset": self.offset,
            "totals": list(self.totals),
        }

    def load_state_dict(self, state: Mapping) -> None:
        fresh = ConsolidatedPenalty(state["lambda_reg"], state["lambda_mode"], state["alpha_scaling"],
                                    state.get("anchor", "per_task"))
        if set(state["weight"]) != set(state["center"]):
            raise ValueError("state: 'weight' and 'center' must name the same parameters")
        self.__dict__.update(fresh.__dict__)
        self.weight = {n: t.clone() for n, t in state["weight"].items()}
        self.center = {n: t.clone() for n, t in state["center"].items()}
        self.offset = float(state["offset"])
        self.totals = [float(s) for s in state["totals"]]

