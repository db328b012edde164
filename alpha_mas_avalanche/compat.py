"""Fixes that Avalanche 0.6 needs beside today's torch and wandb, applied by :func:`for_avalanche`.

``import alpha_mas_avalanche`` applies none of them. :func:`for_avalanche` runs when the
package's Avalanche side is loaded through its public names (``from alpha_mas_avalanche
import AlphaMASPlugin``, any plugin, ``PenaltyMetric``); code that imports the plugin
modules directly calls it itself. It is idempotent, touches nothing it does not need, and
installs no import hook:

1. ``torch.optim``: torch 2.14 deletes the names of its submodules (``del sgd``, ...), so
   dill, which Avalanche's ``save_checkpoint`` uses, cannot find ``torch.optim.sgd.SGD`` by
   reference and fails ("Can't pickle sentinel"). The imported submodules are re-attached
   to ``torch.optim`` where the name is missing; nothing else changes.
2. ``qpsolvers`` warns "no QP solver found" when imported without a solver; only Avalanche's
   GEM plugin uses it, and ``avalanche.training.plugins`` imports it for every plugin. That
   one warning is filtered (message and module), before Avalanche's plugins are imported.
3. wandb: Avalanche 0.6's ``WandBLogger`` calls ``wandb.util.generate_id()`` when it starts
   and checks values against ``wandb.viz.CustomChart`` at every metric; wandb 0.31 has
   neither name (they live in ``wandb.sdk.lib.runid`` and ``wandb.plot``). The logger's
   ``import_wandb`` is wrapped so that, when a logger is built (or resumed) and has imported
   wandb, both names are set to wandb's own objects where wandb lacks them; nothing is
   replaced. The logger never calls ``wandb.finish()``: call it when the run is over.
"""
from __future__ import annotations

import functools
import sys
import warnings
from types import SimpleNamespace

_OPTIM = "torch.optim"
_QP_WARNING = "no QP solver found on your system"


def restore_torch_optim_submodules() -> None:
    """Re-attach every imported ``torch.optim.<name>`` submodule to ``torch.optim``."""
    optim = sys.modules.get(_OPTIM)
    if optim is None:
        return
    prefix = _OPTIM + "."
    for name, module in list(sys.modules.items()):
        if name.startswith(prefix) and "." not in name[len(prefix):] and module is not None:
            attr = name[len(prefix):]
            if not hasattr(optim, attr):
                setattr(optim, attr, module)


def restore_wandb_names() -> None:
    """Set ``wandb.util.generate_id`` and ``wandb.viz.CustomChart`` where wandb lacks them."""
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    util = getattr(wandb, "util", None)
    if util is not None and not hasattr(util, "generate_id"):
        from wandb.sdk.lib.runid import generate_id

        util.generate_id = generate_id
    if not hasattr(wandb, "viz"):
        from wandb.plot import CustomChart

        wandb.viz = SimpleNamespace(CustomChart=CustomChart)


def filter_qpsolvers_warning() -> None:
    """Ignore qpsolvers' "no QP solver found" warning, and only that one."""
    warnings.filterwarnings("ignore", message=_QP_WARNING, category=UserWarning, module="qpsolvers")


def wrap_wandb_logger() -> None:
    """Avalanche's ``WandBLogger.import_wandb`` followed by :func:`restore_wandb_names`."""
    from avalanche.logging import WandBLogger

    original = WandBLogger.import_wandb
    if getattr(original, "restores_wandb_names", False):
        return

    @functools.wraps(original)
    def import_wandb(self) -> None:  # noqa: ANN001 - Avalanche's method
        original(self)
        restore_wandb_names()

    import_wandb.restores_wandb_names = True
    WandBLogger.import_wandb = import_wandb


def for_avalanche() -> None:
    """Apply the three fixes (see the module docstring); imports torch and Avalanche."""
    filter_qpsolvers_warning()
    import torch.optim  # noqa: F401 - its submodules are imported with it

    restore_torch_optim_submodules()
    wrap_wandb_logger()
