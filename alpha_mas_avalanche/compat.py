"""Compatibility fix applied on import.

``torch.optim`` (2.14) deletes the names of its submodules (``del sgd``, ...), so dill,
which Avalanche's ``save_checkpoint`` uses, cannot locate ``torch.optim.sgd.SGD`` by
reference, falls back to pickling the class by value, and fails ("Can't pickle
sentinel"). Every strategy checkpoint with a torch optimizer is then impossible.
Re-attaching the already imported submodules to the package restores pickling by
reference; nothing else changes.
"""
from __future__ import annotations

import sys

import torch.optim


def restore_torch_optim_submodules() -> None:
    prefix = "torch.optim."
    for name, module in list(sys.modules.items()):
        if name.startswith(prefix) and "." not in name[len(prefix):] and module is not None:
            attr = name[len(prefix):]
            if not hasattr(torch.optim, attr):
                setattr(torch.optim, attr, module)
