"""Reductions across the ranks of a ``torch.distributed`` job (DDP, Avalanche's
``DistributedHelper``): importance sums, broadcasts, gathers, and each rank's share of the
data. Every function is a no-op in a single process. No Avalanche here.

Collectives run on CPU tensors under gloo and on the current CUDA device under NCCL; they
are called at the end of an experience, never inside a training step.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """A process group of more than one rank is initialised."""
    return world()[1] > 1


def _device() -> torch.device:
    """Where the default group's collectives take tensors (CUDA under NCCL)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sums(sums: Mapping[str, Tensor], count: int) -> tuple[dict[str, Tensor], int]:
    """``sums`` and ``count`` added over all ranks, in ONE all-reduce of a float64 buffer of
    the sums' size plus one (exact for counts below 2**53); every rank gets the same bits.
    The sums come back in their own dtype and on their own device."""
    if not is_distributed():
        return dict(sums), count
    names = list(sums)
    flat = torch.cat([sums[n].detach().reshape(-1).to(_device(), torch.float64) for n in names]
                     + [torch.tensor([float(count)], dtype=torch.float64, device=_device())])
    dist.all_reduce(flat)
    out, start = {}, 0
    for name in names:
        t = sums[name]
        out[name] = flat[start:start + t.numel()].view(t.shape).to(t.device, t.dtype)
        start += t.numel()
    return out, int(flat[-1])


def mean_over_ranks(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The mean of each tensor over the ranks (one all-reduce); equal inputs come back
    unchanged, bit for bit."""
    sums, count = all_reduce_sums(tensors, 1)
    return {n: t / count for n, t in sums.items()} if count > 1 else sums


def broadcast_(tensors: Sequence[Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s values (one broadcast)."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).to(_device(), torch.float64) for t in tensors])
    dist.broadcast(flat, src)
    start = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[start:start + t.numel()].view(t.shape))
            start += t.numel()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every rank (a picklable Python object)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src, device=_device())
    return box[0]


def all_gather_rows(rows: Tensor) -> Tensor:
    """Every rank's ``rows`` (a tensor whose first dimension may differ between ranks),
    concatenated in rank order, on ``rows``' device and in its dtype."""
    if not is_distributed():
        return rows
    _, size = world()
    device = _device()
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([rows.shape[0]], dtype=torch.long, device=device))
    counts = [int(c) for c in counts]
    padded = rows.new_zeros((max(counts), *rows.shape[1:])).to(device)
    padded[: rows.shape[0]] = rows.to(device)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(rows.device)


def rank_share(data: Any, max_samples: int | None = None) -> tuple[Any, int | None]:
    """This rank's part of ``data`` and of ``max_samples``, so that the ranks together cover
    what one process would: where every rank holds the same data (Avalanche's
    ``DistributedHelper``: each rank has the whole experience), rank ``r`` of ``R`` takes the
    ``r``-th of ``R`` consecutive blocks of the first ``max_samples`` (gathered in rank
    order, the blocks are the data in its own order); where the ranks hold different data
    (each its own shard), each keeps all of it and up to its share of ``max_samples``.
    Data that cannot be indexed (a DataLoader, an iterable) is kept whole on every rank,
    and so is data of fewer samples than ranks."""
    rank, size = world()
    if size == 1:
        return data, max_samples
    share = None if max_samples is None else \
        max(1, max_samples // size + (rank < max_samples % size))
    fingerprint = _fingerprint(data)
    fingerprints = [None] * size
    dist.all_gather_object(fingerprints, fingerprint)
    if fingerprint is None or any(f != fingerprint for f in fingerprints):
        return data, share
    stop = len(data) if max_samples is None else min(len(data), max_samples)
    if stop < size:
        return data, max_samples
    indices = list(range(rank * stop // size, (rank + 1) * stop // size))
    if isinstance(data, Tensor):
        return data[indices], None
    if callable(getattr(data, "subset", None)):  # an Avalanche dataset keeps its collate
        return data.subset(indices), None
    return torch.utils.data.Subset(data, indices), None


def _fingerprint(data: Any) -> tuple | None:
    """``(length, sums of the first and last inputs)`` of indexable data, else None."""
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")) or \
            isinstance(data, torch.utils.data.DataLoader):
        return None
    if len(data) == 0:
        return (0,)
    ends = []
    for index in (0, len(data) - 1):
        item = data[index]
        x = item[0] if isinstance(item, (tuple, list)) else item
        ends.append(float(x.double().sum()) if isinstance(x, Tensor) else math.nan)
    return (len(data), *ends)
