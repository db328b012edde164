"""Models of the reference protocol.

Contract relied on by the plugins: every model has ``features(x) -> Tensor`` (the shared
trunk) and an attribute ``classifier`` (the head), called as
``classifier(features, task_labels)`` when the model is a ``MultiTaskModule`` (task-
incremental, Avalanche ``MultiHeadClassifier``), else ``classifier(features)``
(class-incremental, Avalanche ``IncrementalClassifier``; domain-incremental, one fixed
``nn.Linear`` head shared by every task).
"""
from __future__ import annotations

from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from torch import Tensor, nn

from alpha_mas_avalanche.model_names import MODELS
from alpha_mas_avalanche.validation import check_choice, check_positive_int

CLASSES_PER_TASK = 2


def mlp_trunk(input_size: int, hidden_size: int = 400, hidden_layers: int = 2) -> nn.Sequential:
    """Flatten, then ``hidden_layers`` x (Linear, ReLU)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_size
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU()]
        width = hidden_size
    return nn.Sequential(*layers)


def cnn_trunk(in_channels: int = 3, feature_size: int = 256) -> nn.Sequential:
    """Small CIFAR-10 CNN: 2 x (conv-conv-pool), then one hidden linear layer (32x32 input)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, feature_size), nn.ReLU(),
    )


class MultiHeadNet(MultiTaskModule):
    """A shared trunk and one head per task (Avalanche ``MultiHeadClassifier``)."""

    def __init__(self, trunk: nn.Module, feature_size: int,
                 classes_per_task: int = CLASSES_PER_TASK) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = MultiHeadClassifier(feature_size, initial_out_features=classes_per_task)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor, task_labels: Tensor) -> Tensor:
        return self.classifier(self.features(x), task_labels)


class SingleHeadNet(nn.Module):
    """A shared trunk and one growing head (Avalanche ``IncrementalClassifier``)."""

    def __init__(self, trunk: nn.Module, feature_size: int,
                 classes_per_task: int = CLASSES_PER_TASK) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = IncrementalClassifier(feature_size, initial_out_features=classes_per_task)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class SharedHeadNet(nn.Module):
    """Domain-incremental: a shared trunk and one fixed head of ``classes_per_task`` outputs,
    the label being the position within the task's pair."""

    def __init__(self, trunk: nn.Module, feature_size: int,
                 classes_per_task: int = CLASSES_PER_TASK) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = nn.Linear(feature_size, classes_per_task)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


HEADS = {"task": MultiHeadNet, "class": SingleHeadNet, "domain": SharedHeadNet}


def make_model(name: str, *, input_shape: tuple[int, ...], scenario: str = "task",
               hidden_size: int = 400) -> nn.Module:
    """``"mlp"`` (two hidden layers of ``hidden_size``) or ``"cnn"`` for ``input_shape``
    (C, H, W); multi-head for ``scenario="task"``, single growing head for ``"class"``,
    one fixed 2-output head for ``"domain"``."""
    check_choice("name", name, MODELS)
    check_choice("scenario", scenario, tuple(HEADS))
    check_positive_int("hidden_size", hidden_size)
    if name == "mlp":
        size = 1
        for dim in input_shape:
            size *= int(dim)
        trunk, width = mlp_trunk(size, hidden_size), hidden_size
    else:
        if tuple(input_shape[1:]) != (32, 32):
            raise ValueError(f"input_shape: the cnn expects (C, 32, 32) inputs, got {input_shape}")
        width = 256
        trunk = cnn_trunk(int(input_shape[0]), width)
    return HEADS[scenario](trunk, width)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MultiHeadNet", "SingleHeadNet", "SharedHeadNet", "make_model", "mlp_trunk", "cnn_trunk",
           "count_parameters", "MODELS"]

