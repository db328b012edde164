"""Alpha-scaled Memory Aware Synapses (AlphaMAS) for Avalanche."""
from alpha_mas_avalanche.compat import restore_torch_optim_submodules

restore_torch_optim_submodules()

from alpha_mas_avalanche.importance import mas_importance
from alpha_mas_avalanche.penalty import ConsolidatedPenalty, alpha_weights
from alpha_mas_avalanche.plugins import AlphaMASPlugin
from alpha_mas_avalanche.plugins import EBLLPlugin, IMMPlugin

__version__ = "0.1.0"
__all__ = ["AlphaMASPlugin", "mas_importance", "alpha_weights", "ConsolidatedPenalty"]
__all__ += ["EBLLPlugin", "IMMPlugin"]
