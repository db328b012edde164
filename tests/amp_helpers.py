"""Shared pieces of the mixed-precision, host-sync and device tests: a CNN with BatchNorm
for the digits benchmark, the plugin factories, and Naive with mixed precision."""
from __future__ import annotations

import contextlib
import warnings

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from alpha_mas_avalanche import AlphaMASPlugin, EBLLPlugin, IMMPlugin, L2Plugin, SIPlugin
from alpha_mas_avalanche.amp import amp_strategy
from digits import MultiHeadMLP


class MultiHeadCNN(MultiTaskModule):
    """Digits as 1x8x8 images: Conv2d -> BatchNorm2d -> ReLU -> Linear trunk, 2-way heads."""

    def __init__(self, channels: int = 6, hidden: int = 32):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Flatten(),
            nn.Linear(channels * 64, hidden), nn.ReLU())
        self.classifier = MultiHeadClassifier(hidden, 2)

    def features(self, x):
        return self.trunk(x)

    def forward_single_task(self, x, task_label):
        # float32: Avalanche gathers the heads' outputs in a float32 buffer
        return self.classifier(self.trunk(x), task_label).float()


class AmpMLP(MultiHeadMLP):
    """The digits MLP, its heads' outputs in float32 (see :class:`MultiHeadCNN`)."""

    def forward_single_task(self, x, task_label):
        return super().forward_single_task(x, task_label).float()


MODELS = {"mlp": lambda: AmpMLP(hidden=32), "cnn_bn": MultiHeadCNN}

PLUGINS = {
    "alpha_mas": lambda: AlphaMASPlugin(lambda_reg=1.0),
    "alpha_mas_last_epochs": lambda: AlphaMASPlugin(lambda_reg=1.0, importance_from="last_epochs"),
    "si": lambda: SIPlugin(si_lambda=1.0),
    "l2": lambda: L2Plugin(lambda_reg=0.01),
    "ebll": lambda: EBLLPlugin(code_size=8, autoencoder_epochs=2),
    "imm": lambda: IMMPlugin(mode="mode", l2_transfer=1e-3, max_fisher_samples=64),
}


AmpNaive = amp_strategy(Naive)


def make_strategy(model, plugins, device="cpu", amp="off", scaler=None, lr=0.05, epochs=1):
    """Naive with SGD; ``amp``/``scaler``: forward and loss under autocast, loss scaling."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = EvaluationPlugin(loggers=[])
        return AmpNaive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
                        train_mb_size=32, train_epochs=epochs, device=device, plugins=plugins,
                        evaluator=evaluator, amp=amp, scaler=scaler)


def autocast(device, dtype):
    """``torch.autocast`` on ``device``'s type with ``dtype``, or nothing for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def train(strategy, experiences, device="cpu", dtype=None):
    for exp in experiences:
        torch.manual_seed(100 + exp.current_experience)
        with autocast(device, dtype), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            strategy.train(exp, eval_streams=[])


def relative_l1(got, want) -> float:
    """``sum |got - want| / sum |want|`` in float64, over one tensor or over every tensor
    of two dicts together."""
    if isinstance(want, dict):
        got, want = [got[n] for n in want], list(want.values())
    else:
        got, want = [got], [want]
    diff = sum(float((g.detach().double().cpu() - w.detach().double().cpu()).abs().sum())
               for g, w in zip(got, want))
    return diff / max(sum(float(w.detach().double().abs().sum()) for w in want), 1e-300)
