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
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

_OPTIM = "torch.optim"


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


class _AfterTorchOptimImport(importlib.abc.MetaPathFinder):
    """Finds ``torch.optim`` like the normal finders do, then runs the fix after it executes."""

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib API
        if fullname != _OPTIM:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_fix(module: ModuleType) -> None:
            exec_module(module)
            restore_torch_optim_submodules()

        spec.loader.exec_module = exec_then_fix
        return spec


def install() -> None:
    """Apply both fixes now, or arrange the torch.optim one for when torch is imported."""
    warnings.filterwarnings("ignore", message="no QP solver found on your system",
                            category=UserWarning, module="qpsolvers")
    if _OPTIM in sys.modules:
        restore_torch_optim_submodules()
    elif not any(isinstance(f, _AfterTorchOptimImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTorchOptimImport())
