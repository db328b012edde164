"""Encoder Based Lifelong Learning (EBLL) as an Avalanche plugin."""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor, nn
from torch.utils.data import DataLoader

from alpha_mas_avalanche import distributed
from alpha_mas_avalanche.autoencoder import (
    FeatureAutoencoder,
    code_loss,
    distillation_loss,
    train_autoencoder,
)
from alpha_mas_avalanche.parameters import model_device, model_dtype, unwrap
from alpha_mas_avalanche.plugins.base import ContinualPlugin
from alpha_mas_avalanche.precision import accumulation_dtype, autocast_off
from alpha_mas_avalanche.validation import check_finite_float, check_positive_int

CONTRACT = (
    "EBLLPlugin needs the model split into a shared feature extractor and task heads: a "
    "method `features(x) -> Tensor` (or pass EBLLPlugin(feature_extractor=fn) with "
    "fn(model, x) -> features) and an attribute `classifier`, called as "
    "`classifier(features, task_label)` when the model is an Avalanche MultiTaskModule "
    "(e.g. a MultiHeadClassifier) and as `classifier(features)` otherwise"
)


class EBLLPlugin(ContinualPlugin):
    """Encoder Based Lifelong Learning.

    Rannen, Aljundi, Blaschko, Tuytelaars, "Encoder Based Lifelong Learning", ICCV 2017.
    LwF (distillation of the old heads on the new data) plus the preservation of each old
    task's low-dimensional codes of the features:

        L = CE(new task) + distillation_weight * sum_t KD_T(T_t(F(x)), T_t(F*(x)))
            + code_weight/2 * sum_t ||sigmoid(E_t F(x)) - sigmoid(E_t F*(x))||^2

    ``F*`` is the model as it was when the current experience started. After each
    experience an undercomplete autoencoder is trained on that experience's features
    ``F(x)`` (eval transforms, model in eval mode, computed once and held in memory) with
    ``reconstruction_weight/2 ||r - F(x)||^2 + CE(T_t(r), y)`` through the task's frozen
    head; its encoder ``E_t`` is kept. **Memory grows by one small encoder per task**
    (``code_size x feature size`` weights, the paper's trade-off), plus one frozen copy of
    the model (as in LwF).

    Model contract: ``model.features(x)`` (or ``feature_extractor(model, x)``) gives the
    shared features and ``model.classifier`` the heads, called as
    ``classifier(features, task_label)`` for a ``MultiTaskModule`` (task-incremental, one head
    per task label) and ``classifier(features)`` otherwise (class-incremental: one head;
    distillation on the units of the classes seen so far). ``classifier(features(x))`` must
    be what the model outputs. Avalanche's ``MTSimpleMLP`` meets it for flat inputs; for
    images pass ``feature_extractor=lambda m, x: m.features(x.flatten(1))``.

    Args:
        code_size: code dimension of each autoencoder (paper: 100).
        code_weight: ``alpha``, the weight of the code-preservation loss (authors' code: 0.1).
        reconstruction_weight: ``lambda``, the weight of the reconstruction term in the
            autoencoder's objective. The paper's 1e-6 balances the squared error of AlexNet's
            9216-d pool5 features against the cross-entropy; small networks' features are
            orders of magnitude smaller, hence the default 1.
        temperature: distillation temperature ``T`` (LwF, EBLL: 2).
        distillation_weight: weight of the knowledge distillation (LwF's ``lambda_o``: 1).
        autoencoder_epochs: passes over the experience to train each autoencoder.
        autoencoder_lr: Adam learning rate of the autoencoder (authors' code: 1e-2, Adadelta).
        autoencoder_batch_size: batch size of the autoencoder's training.
        feature_extractor: optional ``fn(model, x) -> features`` replacing ``model.features``.

    Mixed precision: under ``torch.autocast`` the losses follow the autocast precision;
    the autoencoders are trained and kept in float32 (float64 for a float64 model) with
    autocast off. ``last_penalty`` (the two terms added to the loss, weighted),
    ``last_code_loss`` and ``last_distillation_loss`` are read from the device only when
    asked for; state restored with ``load_state_dict`` moves to the model's device at the
    next experience.

    Wrappers and data parallel: the model is read inside DDP / torch.compile (the frozen
    copy is of the unwrapped module). Each rank computes the features of its share of the
    experience; they are gathered on every rank, the autoencoder is trained on all of
    them, and rank 0's encoder and history are broadcast, so every rank keeps the same.
    Under DDP every parameter the EBLL terms reach must also be used by the model's
    forward (one head, class-incremental): a multi-head model's old heads, reached only by
    the distillation, are what DDP's ``find_unused_parameters=True`` refuses.
    """

    def __init__(
        self,
        code_size: int = 100,
        code_weight: float = 0.1,
        reconstruction_weight: float = 1.0,
        temperature: float = 2.0,
        distillation_weight: float = 1.0,
        autoencoder_epochs: int = 10,
        autoencoder_lr: float = 1e-2,
        autoencoder_batch_size: int = 256,
        feature_extractor: Callable[[nn.Module, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.code_size = check_positive_int("code_size", code_size)
        self.code_weight = check_finite_float("code_weight", code_weight, non_negative=True)
        self.reconstruction_weight = check_finite_float(
            "reconstruction_weight", reconstruction_weight, non_negative=True
        )
        self.temperature = check_finite_float("temperature", temperature, positive=True)
        self.distillation_weight = check_finite_float(
            "distillation_weight", distillation_weight, non_negative=True
        )
        self.autoencoder_epochs = check_positive_int("autoencoder_epochs", autoencoder_epochs)
        self.autoencoder_lr = check_finite_float("autoencoder_lr", autoencoder_lr, positive=True)
        self.autoencoder_batch_size = check_positive_int(
            "autoencoder_batch_size", autoencoder_batch_size
        )
        if feature_extractor is not None and not callable(feature_extractor):
            raise ValueError(
                "feature_extractor: expected None or a callable fn(model, x) -> features, "
                f"got {type(feature_extractor).__name__}"
            )
        self.feature_extractor = feature_extractor
        self.encoders: list[nn.Linear] = []
        self.old_classes: dict[int | None, set[int]] = {}
        self.previous_model: nn.Module | None = None
        self.autoencoder_history: list[list[float]] = []
        self._code_loss: Tensor | float = 0.0
        self._distillation_loss: Tensor | float = 0.0

    @property
    def last_code_loss(self) -> float:
        """The code-preservation loss of the last training step (reading it synchronises)."""
        return float(self._code_loss)

    @property
    def last_distillation_loss(self) -> float:
        """The distillation loss of the last training step (reading it synchronises)."""
        return float(self._distillation_loss)

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy, **kwargs) -> None:
        super().before_training_exp(strategy, **kwargs)
        check_contract(unwrap(strategy.model), self.feature_extractor)
        self._follow(unwrap(strategy.model))

    def before_backward(self, strategy, **kwargs) -> None:
        if self.previous_model is None:
            return
        model, old = unwrap(strategy.model), self.previous_model
        x = strategy.mb_x
        features = self.features(model, x)
        with torch.no_grad():
            old_features = self.features(old, x)
        codes = code_loss(self.encoders, features, old_features)
        distillation = features.new_zeros(())
        for task, classes in self.old_classes.items():
            units = sorted(classes)
            logits = _head(model, features, task)[:, units]
            with torch.no_grad():
                old_logits = _head(old, old_features, task)[:, units]
            distillation = distillation + distillation_loss(logits, old_logits, self.temperature)
        self._code_loss, self._distillation_loss = codes.detach(), distillation.detach()
        penalty = self.distillation_weight * distillation + self.code_weight * codes
        self._last_penalty = penalty.detach()
        strategy.loss = strategy.loss + penalty

    def after_training_exp(self, strategy, **kwargs) -> None:
        model = unwrap(strategy.model)
        device = model_device(model)
        task = self.task_label(strategy)
        data, _ = distributed.rank_share(strategy.experience.dataset.eval())
        loader = DataLoader(data, batch_size=self.autoencoder_batch_size, shuffle=False,
                            collate_fn=getattr(data, "collate_fn", None))
        was_training = model.training
        model.eval()
        try:
            with self.importance_region(model):
                classes = self._learn_encoder(model, loader, task, device)
        finally:
            model.train(was_training)
        # from the labels (online experiences have no classes_in_this_experience)
        self.old_classes.setdefault(task, set()).update(classes)
        self.previous_model = copy.deepcopy(model).eval()
        for p in self.previous_model.parameters():
            p.requires_grad_(False)

    # ------------------------------------------------------------- public API
    def features(self, model: nn.Module, x: Tensor) -> Tensor:
        """The shared features of ``x`` under ``model`` (the contract's extractor)."""
        if self.feature_extractor is not None:
            return self.feature_extractor(model, x)
        return model.features(x)

    def state_dict(self) -> dict:
        return {
            "encoders": [e.state_dict() for e in self.encoders],
            "old_classes": {t: sorted(c) for t, c in self.old_classes.items()},
            "previous_model": self.previous_model,
            "autoencoder_history": self.autoencoder_history,
        }

    def load_state_dict(self, state: dict) -> None:
        self.encoders = []
        for weights in state["encoders"]:
            code_size, feature_size = weights["weight"].shape
            encoder = nn.Linear(feature_size, code_size).to(weights["weight"])
            encoder.load_state_dict(weights)
            self.encoders.append(encoder.requires_grad_(False))
        self.old_classes = {t: set(c) for t, c in state["old_classes"].items()}
        self.previous_model = state["previous_model"]
        if self.previous_model is not None:
            self.previous_model = unwrap(self.previous_model)
        self.autoencoder_history = [list(h) for h in state["autoencoder_history"]]
        self.state_loaded()

    # ---------------------------------------------------------------- helpers
    def _follow(self, model: nn.Module) -> None:
        """Encoders and the frozen previous model on ``model``'s device and in its dtype
        (after a restore); the encoders in float32 (float64 for a float64 model)."""
        device, dtype = model_device(model), model_dtype(model)
        encoder_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        self.encoders = [e.to(device, encoder_dtype) for e in self.encoders]
        if self.previous_model is not None:
            self.previous_model.to(device, dtype)

    def _learn_encoder(self, model: nn.Module, loader: DataLoader, task, device) -> set[int]:
        """Train and keep the experience's encoder; returns the classes of its labels."""
        features, labels = [], []
        with torch.no_grad():
            for batch in loader:  # float32 (float64 for a float64 model) whatever autocast does
                out = self.features(model, batch[0].to(device))
                features.append(out.to(accumulation_dtype(out)))
                labels.append(batch[1].to(device))
        if not features:
            raise ValueError("EBLLPlugin: the experience holds no samples; no autoencoder to train")
        # one pass, reused every epoch; every rank's share, on every rank
        features = distributed.all_gather_rows(torch.cat(features))
        labels = distributed.all_gather_rows(torch.cat(labels))
        feature_size = features.flatten(1).shape[1]
        if self.code_size >= feature_size:
            raise ValueError(
                f"code_size: expected fewer than the {feature_size} features (an undercomplete "
                f"autoencoder), got {self.code_size}"
            )

        def batches():
            order = torch.randperm(len(labels), device=labels.device)
            return zip(features[order].split(self.autoencoder_batch_size),
                       labels[order].split(self.autoencoder_batch_size))

        autoencoder = FeatureAutoencoder(feature_size, self.code_size).to(features)
        with autocast_off(features.device):  # float32 weights, float32 Adam
            history = train_autoencoder(
                autoencoder,
                batches,
                lambda reconstruction: _head(model, reconstruction.to(model_dtype(model)), task)
                .to(features.dtype),
                reconstruction_weight=self.reconstruction_weight,
                epochs=self.autoencoder_epochs,
                lr=self.autoencoder_lr,
            )
        distributed.broadcast_(list(autoencoder.encoder.parameters()))
        self.autoencoder_history.append(distributed.broadcast_object(history))
        self.encoders.append(autoencoder.encoder.requires_grad_(False))
        return {int(c) for c in labels.unique()}


def check_contract(model: nn.Module, feature_extractor) -> None:
    """Raise a TypeError saying what is missing when ``model`` does not meet the contract."""
    missing = []
    if feature_extractor is None and not callable(getattr(model, "features", None)):
        missing.append("a method `features(x)`")
    if not callable(getattr(model, "classifier", None)):
        missing.append("an attribute `classifier`")
    if missing:
        raise TypeError(f"{CONTRACT}. {type(model).__name__} lacks {' and '.join(missing)}.")


def _head(model: nn.Module, features: Tensor, task: int | None) -> Tensor:
    if isinstance(model, MultiTaskModule):
        return model.classifier(features, task)
    return model.classifier(features)
