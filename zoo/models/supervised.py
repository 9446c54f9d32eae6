"""Supervised training written once: loss, metrics, optimiser, schedule and penalties.

An architecture subclasses :class:`SupervisedModule`, builds ``self.net`` (an ``nn.Module`` with
``forward`` and ``forward_features``) and sets ``input_shape``; everything else lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from zoo.models.base import ZooModule, compute_and_reset
from zoo.optim import check_optim_args

Task = Literal["multiclass", "binary", "regression"]
STAGES = ("train", "val", "test")


def _metrics(task: str, num_classes: int) -> torchmetrics.MetricCollection:
    if task == "multiclass":
        return torchmetrics.MetricCollection({"acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)})
    if task == "binary":
        return torchmetrics.MetricCollection({"acc": torchmetrics.Accuracy(task="binary")})
    return torchmetrics.MetricCollection({"mse": torchmetrics.MeanSquaredError(), "mae": torchmetrics.MeanAbsoluteError()})


class SupervisedModule(ZooModule):
    """Shared training logic for classifiers and regressors.

    Args:
        task: ``multiclass`` (softmax + cross-entropy, outputs logits (N, num_classes)),
            ``binary`` (sigmoid + BCE, outputs one logit (N, 1)) or ``regression``
            (outputs (N, num_outputs), loss ``regression_loss``).
        num_classes: classes for ``multiclass``; number of outputs for ``regression``.
        regression_loss: ``mse`` or ``mae`` (regression only).
        optimizer: sgd, sgd_momentum, adam, adamw, rmsprop or adagrad.
        lr: (peak) learning rate.
        weight_decay: L2 penalty, applied by the optimiser.
        momentum: momentum for sgd_momentum and rmsprop.
        l1: weight of an L1 penalty on all weight matrices/kernels, added to the training loss.
        scheduler: none, cosine, onecycle or step (see :func:`zoo.optim.build_scheduler`).
        mean: per-channel input mean subtracted inside the model (None: no normalisation).
        std: per-channel input standard deviation.
        class_names: the name of each class, in output order (None: unnamed); kept with the weights.
    """

    def __init__(
        self,
        task: Task = "multiclass",
        num_classes: int = 10,
        regression_loss: Literal["mse", "mae"] = "mse",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        l1: float = 0.0,
        scheduler: str = "none",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if task not in ("multiclass", "binary", "regression"):
            raise ValueError(f"task must be 'multiclass', 'binary' or 'regression', got {task!r}")
        if task == "multiclass" and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 for multiclass, got {num_classes}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if regression_loss not in ("mse", "mae"):
            raise ValueError(f"regression_loss must be 'mse' or 'mae', got {regression_loss!r}")
        if not l1 >= 0:
            raise ValueError(f"l1 must be >= 0, got {l1}")
        check_optim_args(optimizer, lr, weight_decay, momentum, scheduler)
        expected_names = 2 if task == "binary" else num_classes
        if class_names is not None and len(class_names) != expected_names:
            raise ValueError(f"class_names must name each of the {expected_names} outputs, got {len(class_names)} names")
        self.save_hyperparameters()
        self.class_names = list(class_names) if class_names is not None else None
        self._register_normalization(mean, std)
        self.task = task
        self.num_outputs = 1 if task == "binary" else num_classes
        if task != "regression":
            self.monitor, self.monitor_mode = "val/acc", "max"
        metrics = _metrics(task, num_classes)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.net: nn.Module  # set by the subclass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or predictions (regression) for inputs of ``input_shape``."""
        self.validate_input(x)
        return self.net(self.normalize(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation, (N, num_features)."""
        self.validate_input(x)
        return self.net.forward_features(self.normalize(x))

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and the predictions the metrics should see."""
        if self.task == "multiclass":
            return F.cross_entropy(output, target), output
        if self.task == "binary":
            logits = output.squeeze(1)
            return F.binary_cross_entropy_with_logits(logits, target.float()), logits
        target = target.to(output.dtype).view_as(output)
        loss_fn = F.mse_loss if self.hparams.regression_loss == "mse" else F.l1_loss
        return loss_fn(output, target), output

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss, preds = self._loss(self(x), y)
        target = y.view_as(preds) if self.task == "regression" else y
        if stage == "train":  # recorded cheaply: see ZooModule.defer_update and log_train_loss
            self.defer_update("train_metrics", preds, target)
            self.log_train_loss(loss, x.shape[0])
        else:  # epoch-level values, averaged across DDP ranks
            metrics = getattr(self, f"{stage}_metrics")
            metrics.update(preds, target)
            self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        return compute_and_reset(self.train_metrics) or {}

    def training_step(self, batch, batch_idx):
        loss = self._shared_step(batch, "train")
        if self.hparams.l1 > 0:
            # L1 on weights only (matrices and kernels), not on biases or norm scales.
            penalty = sum(p.abs().sum() for p in self.net.parameters() if p.ndim > 1)
            loss = loss + self.hparams.l1 * penalty
        return loss

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")
