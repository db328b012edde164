"""Compatibility fixes installed when ``alpha_mas_avalanche`` is imported, without
importing torch (the CLI must answer ``--help`` at once).

1. ``torch.optim`` (2.14) deletes the names of its submodules (``del sgd``, ...), so dill,
   which Avalanche's ``save_checkpoint`` uses, cannot locate ``torch.optim.sgd.SGD`` by
   reference, falls back to pickling the class by value, and fails ("Can't pickle
   sentinel"). Every strategy checkpoint with a torch optimizer is then impossible.
   Re-attaching the already imported submodules to the package restores pickling by
   reference; nothing else changes. If ``torch.optim`` is already imported this happens at
   once, otherwise right after ``torch.optim`` finishes importing (a one-shot import hook).
2. ``qpsolvers`` warns "no QP solver found" when imported without a solver; only
   Avalanche's GEM plugin uses it and ``avalanche.training.plugins`` imports it for every
   plugin. That one warning is filtered (message and module), no other.
3. Avalanche 0.6's ``WandBLogger`` calls ``wandb.util.generate_id()`` when it starts and
   checks values against ``wandb.viz.CustomChart`` at every metric; wandb 0.31 has neither
   name (they live in ``wandb.sdk.lib.runid`` and ``wandb.plot``), so the logger fails at
   once. Both names are set to wandb's own objects where they are missing, when ``wandb``
   is imported (the same one-shot hook as for ``torch.optim``); nothing is replaced. The
   logger never calls ``wandb.finish()``: call it when the run is over.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType, SimpleNamespace

_OPTIM = "torch.optim"
_WANDB = "wandb"


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
    wandb = sys.modules.get(_WANDB)
    if wandb is None:
        return
    util = getattr(wandb, "util", None)
    if util is not None and not hasattr(util, "generate_id"):
        from wandb.sdk.lib.runid import generate_id

        util.generate_id = generate_id
    if not hasattr(wandb, "viz"):
        from wandb.plot import CustomChart

        wandb.viz = SimpleNamespace(CustomChart=CustomChart)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds module ``name`` like the normal finders do, then runs ``fix`` after it executes."""

    def __init__(self, name: str, fix: Callable[[], None]) -> None:
        self.name, self.fix = name, fix

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib API
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module, fix = spec.loader.exec_module, self.fix

        def exec_then_fix(module: ModuleType) -> None:
            exec_module(module)
            fix()

        spec.loader.exec_module = exec_then_fix
        return spec


def _fix_now_or_after_import(name: str, fix: Callable[[], None]) -> None:
    if name in sys.modules:
        fix()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, fix))


def install() -> None:
    """Apply the fixes now, or arrange them for when torch.optim / wandb are imported."""
    warnings.filterwarnings("ignore", message="no QP solver found on your system",
                            category=UserWarning, module="qpsolvers")
    _fix_now_or_after_import(_OPTIM, restore_torch_optim_submodules)
    _fix_now_or_after_import(_WANDB, restore_wandb_names)
