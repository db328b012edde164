"""One fork server for the tests that start many processes: a fresh single-threaded
interpreter imports torch, Avalanche and the modules a run uses once, then forks each child
from itself. Children skip the ~10 s import and, unlike forks of the test process, never
inherit its threads (pytest-timeout, torch's pools, W&B) with a lock held mid-fork."""
from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

PRELOAD = ["torch", "avalanche.training", "sklearn.datasets", "alpha_mas_avalanche.plugins",
           "alpha_mas_avalanche.data.benchmark", "alpha_mas_avalanche.experiment.grid",
           "alpha_mas_avalanche.experiment.train", "alpha_mas_avalanche.experiment.report",
           "alpha_mas_avalanche.experiment.figures"]


def forkserver_context() -> BaseContext:
    """The fork-server context, preloading :data:`PRELOAD` (the server starts, once per
    test session, when its first child does)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context
