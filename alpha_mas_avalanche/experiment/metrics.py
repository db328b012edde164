"""What one run measures: Avalanche's evaluator, the numbers read back from its metric names,
and :class:`TrainingRecorder` (penalty per epoch, alphas and importance totals per experience)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from avalanche.core import SupervisedPlugin

EXP_ACC = re.compile(r"^Top1_Acc_Exp/eval_phase/(\w+?)_stream/Task(\d+)/Exp(\d+)$")


def make_evaluator():
    """Accuracy (epoch, experience, stream), loss per epoch, forgetting and BWT; no loggers."""
    from avalanche.evaluation.metrics import (
        accuracy_metrics,
        bwt_metrics,
        forgetting_metrics,
        loss_metrics,
    )
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[],
    )


def exp_accuracies(metrics: dict[str, Any]) -> dict[int, float]:
    out = {}
    for name, value in metrics.items():
        match = EXP_ACC.match(name)
        if match:
            out[int(match.group(3))] = float(value)
    return out


def metric_value(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None else float(value)


def per_exp(metrics: dict[str, Any], prefix: str, stream: str, n_exps: int) -> list[float | None]:
    out: list[float | None] = [None] * n_exps
    pattern = re.compile(rf"^{prefix}/eval_phase/{stream}_stream/Task\d+/Exp(\d+)$")
    for name, value in metrics.items():
        match = pattern.match(name)
        if match:
            out[int(match.group(1))] = float(value)
    return out


def epoch_curve(all_metrics: dict[str, tuple[list, list]],
                epochs: Sequence[int]) -> list[dict[str, Any]]:
    """Training accuracy and loss per epoch, over the whole sequence, in order
    (``epochs[i]``: the epochs of experience ``i``)."""
    points: dict[str, list[tuple[int, float]]] = {"acc": [], "loss": []}
    for name, (xs, ys) in all_metrics.items():
        if name.startswith("Top1_Acc_Epoch/train_phase/"):
            points["acc"] += list(zip(xs, ys))
        elif name.startswith("Loss_Epoch/train_phase/"):
            points["loss"] += list(zip(xs, ys))
    acc = sorted(points["acc"])
    loss = dict(sorted(points["loss"]))
    experience_of = [i for i, n in enumerate(epochs) for _ in range(n)]
    return [
        {"epoch": k, "experience": experience_of[k] if k < len(experience_of) else len(epochs) - 1,
         "train_acc": float(y), "train_loss": loss.get(x)}
        for k, (x, y) in enumerate(acc)
    ]


class TrainingRecorder(SupervisedPlugin):
    """Avalanche plugin: mean penalty per epoch, alphas after each experience, tqdm over epochs."""

    def __init__(self, plugins: list, progress_total: int = 0, name: str = "") -> None:
        super().__init__()
        self.sources = [p for p in plugins if hasattr(p, "last_penalty")]
        self.penalty_per_epoch: list[float] = []
        self.alphas: list[list[float]] = []
        self.totals: list[list[float]] = []
        self._sum, self._count = 0.0, 0
        self._bar = None
        if progress_total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=progress_total, desc=f"epochs {name}"[:60], leave=False,
                             position=1, unit="epoch")

    def after_training_iteration(self, strategy, **kwargs) -> None:
        if self.sources:  # summed on the device: read back once per epoch
            for plugin in self.sources:
                value = getattr(plugin, "last_penalty_tensor", None)
                self._sum = self._sum + (value if value is not None else plugin.last_penalty)
            self._count += 1

    def after_training_epoch(self, strategy, **kwargs) -> None:
        if self.sources:
            self.penalty_per_epoch.append(float(self._sum) / max(self._count, 1))
            self._sum, self._count = 0.0, 0
        if self._bar is not None:
            self._bar.update(1)

    def after_training_exp(self, strategy, **kwargs) -> None:
        for plugin in self.sources:
            if hasattr(plugin, "alphas"):
                self.alphas.append([float(a) for a in plugin.alphas])
            if hasattr(plugin, "importance_totals"):
                self.totals.append([float(t) for t in plugin.importance_totals])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
