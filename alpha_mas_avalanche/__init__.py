"""Alpha-scaled Memory Aware Synapses (AlphaMAS) for Avalanche.

The public names below import torch and Avalanche on first use (``from alpha_mas_avalanche
import AlphaMASPlugin`` works as usual), so that ``compare-baselines --help`` answers at once.
The compatibility fixes of :mod:`.compat` are installed on import, before any torch use.
"""
from __future__ import annotations

import importlib
from typing import Any

from alpha_mas_avalanche import compat

compat.install()

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "AlphaMASPlugin": "alpha_mas_avalanche.plugins",
    "EBLLPlugin": "alpha_mas_avalanche.plugins",
    "IMMPlugin": "alpha_mas_avalanche.plugins",
    "SIPlugin": "alpha_mas_avalanche.plugins",
    "L2Plugin": "alpha_mas_avalanche.plugins",
    "mas_importance": "alpha_mas_avalanche.importance",
    "alpha_weights": "alpha_mas_avalanche.penalty",
    "ConsolidatedPenalty": "alpha_mas_avalanche.penalty",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
