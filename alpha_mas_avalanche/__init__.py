"""Alpha-scaled Memory Aware Synapses (AlphaMAS) for Avalanche.

The public names below import torch and Avalanche on first use (``from alpha_mas_avalanche
import AlphaMASPlugin`` works as usual), so that ``compare-baselines --help`` answers at once.
The compatibility fixes of :mod:`.compat` are installed on import, before any torch use.
"""
from __future__ import annotations

from alpha_mas_avalanche import compat
from alpha_mas_avalanche.lazy import lazy_exports

compat.install()

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
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
