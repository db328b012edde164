"""Models of the reference protocol.

Contract relied on by the plugins: every model has ``features(x) -> Tensor`` (the shared
trunk) and an attribute ``classifier`` (the head), called as
``classifier(features, task_labels)`` when the model is a ``MultiTaskModule`` (task-
incremental, Avalanche ``MultiHeadClassifier``), else ``classifier(features)``
(class-incremental, Avalanche ``IncrementalClassifier``; domain-incremental, one fixed
``nn.Linear`` head shared by every task).
"""
from __future__ import annotations

import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from torch import Tensor, nn

from alpha_mas_avalanche.model_names import MODELS
from alpha_mas_avalanche.precision import autocast_off
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


class ConvTrunk(nn.Sequential):
    """A convolutional trunk (``nn.Sequential``); with ``channels_last`` the input is
    converted to ``torch.channels_last`` first, so every convolution runs in NHWC: the
    same values to float rounding, about 1.2-1.4x the images/s of NCHW on CPU for the
    CIFAR CNN (``benchmarks/cnn_throughput.py``, docs/speed.md). Parameters stay
    contiguous, and ``Flatten`` gives the same feature order either way."""

    def __init__(self, *layers: nn.Module, channels_last: bool = False) -> None:
        super().__init__(*layers)
        self.channels_last = channels_last

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def cnn_trunk(in_channels: int = 3, feature_size: int = 256) -> ConvTrunk:
    """Small CIFAR-10 CNN: 2 x (conv-conv-pool), then one hidden linear layer (32x32 input)."""
    return ConvTrunk(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, feature_size), nn.ReLU(),
        channels_last=True,
    )


def vgg16_trunk(in_channels: int = 3) -> ConvTrunk:
    """torchvision's VGG-16 convolutional part (13 conv layers, 5 max-pools, random init,
    no pretrained weights), flattened: 512 features for a 32x32 input."""
    from torchvision.models import vgg16

    features = vgg16(weights=None).features
    if in_channels != 3:
        first = features[0]
        features[0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size,
                                padding=first.padding)
    return ConvTrunk(features, nn.Flatten(), channels_last=True)


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
        features = self.features(x)
        if torch.is_autocast_enabled(features.device.type):
            # Avalanche gathers the heads' outputs in a float32 buffer, which rejects
            # autocast's half-precision outputs: the (small) heads run in float32
            with autocast_off(features.device):
                return self.classifier(features.float(), task_labels)
        return self.classifier(features, task_labels)


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
               hidden_size: int = 400, classes_per_task: int = CLASSES_PER_TASK) -> nn.Module:
    """``"mlp"`` (two hidden layers of ``hidden_size``), ``"mlp256"`` (two hidden layers of
    256, whatever ``hidden_size``), ``"cnn"`` (the small CIFAR-10 CNN,
    256 features) or ``"vgg16"`` (torchvision's VGG-16 conv layers, 512 features) for
    ``input_shape`` (C, H, W; 32x32 for the conv nets); multi-head for ``scenario="task"``,
    single growing head for ``"class"``, one fixed head for ``"domain"``; each head starts
    with ``classes_per_task`` outputs (2 on the pair splits, 10 on permuted/rotated MNIST)."""
    check_choice("name", name, MODELS)
    check_choice("scenario", scenario, tuple(HEADS))
    check_positive_int("hidden_size", hidden_size)
    check_positive_int("classes_per_task", classes_per_task)
    if name in ("mlp", "mlp256"):
        size = 1
        for dim in input_shape:
            size *= int(dim)
        width = 256 if name == "mlp256" else hidden_size
        trunk = mlp_trunk(size, width)
    else:
        if tuple(input_shape[1:]) != (32, 32):
            raise ValueError(
                f"input_shape: the {name} expects (C, 32, 32) inputs, got {input_shape}")
        if name == "cnn":
            trunk, width = cnn_trunk(int(input_shape[0]), 256), 256
        else:
            trunk, width = vgg16_trunk(int(input_shape[0])), 512
    return HEADS[scenario](trunk, width, classes_per_task)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MultiHeadNet", "SingleHeadNet", "SharedHeadNet", "make_model", "mlp_trunk", "cnn_trunk",
           "vgg16_trunk", "ConvTrunk",
           "count_parameters", "MODELS"]

