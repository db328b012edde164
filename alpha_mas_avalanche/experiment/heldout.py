"""Held-out accuracy per epoch: after every training epoch, the current model's accuracy on
the validation split of every task seen so far, with a plain no-grad loop.

Outside Avalanche's ``EvaluationPlugin`` on purpose: its forgetting and BWT metrics must see
only the evaluations after each experience. The loop draws no global random numbers (its
``DataLoader`` has a generator of its own), puts the model in eval mode and back, and sees
no gradients, so training is exactly what it is without it.
"""
from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch.utils.data import DataLoader

from alpha_mas_avalanche.experiment.devices import loader_options


@torch.no_grad()
def dataset_accuracy(model: torch.nn.Module, dataset, batch_size: int, device) -> float:
    """Top-1 accuracy of ``model`` on an Avalanche dataset of ``(x, y, task)`` samples."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        generator=torch.Generator(), **loader_options(str(device)))
    correct, total = 0, 0  # counted on the device, read once
    for x, y, t, *_ in loader:
        x, y, t = x.to(device), y.to(device), t.to(device)
        correct = correct + (avalanche_forward(model, x, t).argmax(dim=1) == y).sum()
        total += y.numel()
    return int(correct) / total


class HeldOutAccuracy(SupervisedPlugin):
    """Records ``points``: per training epoch ``{"epoch", "experience", "acc"}``, ``acc`` the
    accuracy on the validation split of each task seen so far (by position).

    Args:
        valid_stream: Avalanche's validation stream (one experience per task).
        batch_size: evaluation mini-batch size.
        joint: the strategy trains on all tasks at once (every task counts as seen).
    """

    def __init__(self, valid_stream, batch_size: int, joint: bool = False) -> None:
        super().__init__()
        self.datasets = [experience.dataset.eval() for experience in valid_stream]
        self.batch_size = batch_size
        self.joint = joint
        self.experience = -1
        self.points: list[dict[str, Any]] = []

    def before_training_exp(self, strategy, **kwargs) -> None:
        self.experience += 1

    def after_training_epoch(self, strategy, **kwargs) -> None:
        seen = len(self.datasets) if self.joint else self.experience + 1
        model = strategy.model
        was_training = model.training
        model.eval()
        try:
            acc = [dataset_accuracy(model, d, self.batch_size, strategy.device)
                   for d in self.datasets[:seen]]
        finally:
            model.train(was_training)
        self.points.append({"epoch": len(self.points), "experience": self.experience, "acc": acc})
