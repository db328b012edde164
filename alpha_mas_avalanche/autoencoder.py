"""Encoder Based Lifelong Learning math (Rannen, Aljundi, Blaschko, Tuytelaars, "Encoder
Based Lifelong Learning", ICCV 2017). No Avalanche here.

After task ``t`` an undercomplete autoencoder ``r = D(sigma(E f))`` is trained on the
task's features ``f = F*(x)``, minimising ``lambda/2 ||r - f||^2 + CE(T_t(r), y)`` with the
task's head ``T_t`` frozen; only the encoder ``E_t`` is kept. While later tasks are learned
the codes are preserved: ``alpha/2 sum_t ||sigma(E_t F(x)) - sigma(E_t F*(x))||^2``, next to
LwF's knowledge distillation on the old heads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FeatureAutoencoder(nn.Module):
    """One hidden layer: ``code = sigmoid(E f)``, ``reconstruction = D code`` (linear)."""

    def __init__(self, feature_size: int, code_size: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(feature_size, code_size)
        self.decoder = nn.Linear(code_size, feature_size)

    def encode(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.encoder(features))

    def forward(self, features: Tensor) -> Tensor:
        return self.decoder(self.encode(features))


def squared_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1/2 ||a - b||^2`` per sample (over every non-batch dimension), averaged over the batch."""
    return 0.5 * (a - b).pow(2).flatten(1).sum(1).mean()


def code_loss(encoders: Sequence[nn.Linear], features: Tensor, anchor_features: Tensor) -> Tensor:
    """``sum_t 1/2 ||sigma(E_t f) - sigma(E_t f*)||^2``, batch-averaged (``alpha`` not applied).

    ``encoders`` are the kept linear encoders ``E_t``; features are flattened first.
    """
    flat, anchor = features.flatten(1), anchor_features.flatten(1)
    total = features.new_zeros(())
    for encoder in encoders:
        dtype = encoder.weight.dtype  # float32 encoders beside a half-precision model
        total = total + squared_distance(torch.sigmoid(encoder(flat.to(dtype))),
                                         torch.sigmoid(encoder(anchor.to(dtype))))
    return total


def distillation_loss(logits: Tensor, old_logits: Tensor, temperature: float) -> Tensor:
    """LwF's knowledge distillation: ``KL(softmax(old/T) || softmax(new/T))``, batch mean."""
    log_p = torch.log_softmax(logits / temperature, dim=1)
    q = torch.softmax(old_logits / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")


def train_autoencoder(
    autoencoder: FeatureAutoencoder,
    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]],
    head: Callable[[Tensor], Tensor],
    *,
    reconstruction_weight: float,
    epochs: int,
    lr: float,
) -> list[float]:
    """Train ``autoencoder`` on ``(features, labels)`` batches for ``epochs`` passes.

    Loss: ``reconstruction_weight * 1/2 ||r - f||^2 + CE(head(r), y)``; only the autoencoder's
    parameters are updated (the head gets no gradient). ``batches()`` starts a new pass.
    Returns the mean loss of each epoch.
    """
    params = list(autoencoder.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    history = []
    for _ in range(epochs):
        total, count = 0.0, 0  # total stays on the device until the epoch ends
        for features, labels in batches():
            flat = features.flatten(1)
            reconstruction = autoencoder(flat)
            loss = reconstruction_weight * squared_distance(reconstruction, flat) + F.cross_entropy(
                head(reconstruction.view_as(features)), labels
            )
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
            total = total + loss.detach() * features.shape[0]
            count += features.shape[0]
        if count == 0:
            raise ValueError("data: holds no samples; the autoencoder needs at least one input")
        history.append(float(total) / count)
    return history
