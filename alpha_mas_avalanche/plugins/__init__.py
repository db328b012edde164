"""Avalanche plugins, one file per method."""
from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin
from alpha_mas_avalanche.plugins.ebll import EBLLPlugin
from alpha_mas_avalanche.plugins.imm import IMMPlugin
from alpha_mas_avalanche.plugins.l2 import L2Plugin
from alpha_mas_avalanche.plugins.si import SIPlugin

__all__ = ["AlphaMASPlugin"]
__all__ += ["EBLLPlugin", "IMMPlugin", "L2Plugin", "SIPlugin"]
