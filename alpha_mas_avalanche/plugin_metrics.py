"""``PenaltyMetric``: an Avalanche ``PluginMetric`` that reports each regularisation
plugin's penalty, alphas and importance totals S_t through the strategy's evaluator, so
every Avalanche logger (W&B, TensorBoard, interactive, text) receives them.

Usage::

    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), PenaltyMetric(),
                                 loggers=[InteractiveLogger(), WandBLogger()])

It reads the plugins of the strategy it is attached to (no arguments needed): every plugin
with a ``last_penalty`` (AlphaMASPlugin, SIPlugin, L2Plugin, EBLLPlugin: distillation and
code terms, IMMPlugin: L2-transfer), ``alphas`` and ``importance_totals``. Names, ``<Plugin>`` being the plugin's class name (with ``#2``... if
a strategy holds two of one class):

- ``<Plugin>/penalty_epoch``: the mean penalty over the epoch's iterations (after each
  training epoch; x = the strategy's training iteration count);
- ``<Plugin>/alpha/task<k>`` and ``<Plugin>/S_t/task<k>``: alpha and S of consolidated task
  ``k`` (after each training experience; k = 0 for the first task trained).

Avalanche's text and interactive loggers print the per-experience values with the next
evaluation (``strategy.eval``), as they do every metric emitted after an experience.
Penalties are summed as tensors on the model's device (``last_penalty_tensor``, no host
sync in a training iteration) and read once per epoch. Avalanche's ``CSVLogger`` writes fixed
accuracy, loss and forgetting columns only, so it shows no ``PluginMetric``, this one
included.
"""
from __future__ import annotations

from typing import Any

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue


class PenaltyMetric(PluginMetric[dict]):
    """Each regularisation plugin's mean penalty per epoch, alphas and S_t per experience."""

    def __init__(self) -> None:
        super().__init__()
        self._sums: dict[str, Any] = {}
        self._count = 0
        self._last: dict[str, float] = {}

    @staticmethod
    def sources(strategy) -> dict[str, Any]:
        """``{name: plugin}`` for the strategy's plugins that keep a ``last_penalty``."""
        named: dict[str, Any] = {}
        for plugin in getattr(strategy, "plugins", ()):
            # looked up on the class: ``hasattr`` would read the property (a host sync)
            if not (hasattr(type(plugin), "last_penalty")
                    or "last_penalty" in getattr(plugin, "__dict__", {})):
                continue
            base = type(plugin).__name__
            name, copy = base, 1
            while name in named:
                copy += 1
                name = f"{base}#{copy}"
            named[name] = plugin
        return named

    def reset(self) -> None:
        self._sums, self._count = {}, 0

    def result(self) -> dict[str, float]:
        """The last values emitted, ``{metric name: value}``."""
        return dict(self._last)

    def before_training_epoch(self, strategy) -> None:
        self.reset()

    def after_training_iteration(self, strategy) -> None:
        super().after_training_iteration(strategy)
        for name, plugin in self.sources(strategy).items():
            value = getattr(plugin, "last_penalty_tensor", None)
            if value is None:  # a plugin of someone else's with a float only
                value = plugin.last_penalty
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1

    def after_training_epoch(self, strategy) -> list[MetricValue]:
        if not self._count:
            return []
        values = {f"{name}/penalty_epoch": float(total) / self._count
                  for name, total in self._sums.items()}
        return self._emit(values, strategy.clock.train_iterations)

    def after_training_exp(self, strategy) -> list[MetricValue]:
        values: dict[str, float] = {}
        for name, plugin in self.sources(strategy).items():
            for key, series in (("alpha", getattr(plugin, "alphas", None)),
                                ("S_t", getattr(plugin, "importance_totals", None))):
                for k, value in enumerate(series or ()):
                    values[f"{name}/{key}/task{k}"] = float(value)
        return self._emit(values, strategy.clock.train_iterations)

    def _emit(self, values: dict[str, float], x_plot: int) -> list[MetricValue]:
        self._last.update(values)
        return [MetricValue(self, name, value, x_plot) for name, value in values.items()]

    def __str__(self) -> str:
        return "PenaltyMetric"
