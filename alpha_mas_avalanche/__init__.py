"""Alpha-scaled Memory Aware Synapses (AlphaMAS) for Avalanche.

The public names below import torch and Avalanche on first use (``from alpha_mas_avalanche
import AlphaMASPlugin`` works as usual), so that ``compare-baselines --help`` answers at once.
Importing the package changes nothing outside it; the first use of a name that loads
Avalanche (the plugins, ``PenaltyMetric``) applies :func:`.compat.for_avalanche` first.
"""
from __future__ import annotations

from typing import Any

from alpha_mas_avalanche import compat
from alpha_mas_avalanche.lazy import lazy_exports

__version__ = "0.1.0"

#: public name -> submodule that defines it (imported on first access)
_LAZY = {
    "AlphaMASPlugin": "plugins",
    "EBLLPlugin": "plugins",
    "IMMPlugin": "plugins",
    "SIPlugin": "plugins",
    "L2Plugin": "plugins",
    "PenaltyMetric": "plugin_metrics",
    "mas_importance": "importance",
    "alpha_weights": "penalty",
    "ConsolidatedPenalty": "penalty",
}
#: the names whose modules import Avalanche: Avalanche's fixes are applied before them
_AVALANCHE_SIDE = ("AlphaMASPlugin", "EBLLPlugin", "IMMPlugin", "SIPlugin", "L2Plugin", "PenaltyMetric")
__all__ = list(_LAZY)
_lazy_getattr, __dir__ = lazy_exports(__name__, _LAZY, globals())


def __getattr__(name: str) -> Any:
    if name in _AVALANCHE_SIDE:
        compat.for_avalanche()
    return _lazy_getattr(name)
