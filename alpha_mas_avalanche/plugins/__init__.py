"""Avalanche plugins, one file per method."""
from alpha_mas_avalanche.plugins.alpha_mas import AlphaMASPlugin

__all__ = ["AlphaMASPlugin"]
