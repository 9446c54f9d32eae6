"""Recurrent models: a sequence classifier and a time-series forecaster, both on :class:`RNNNet`.

Inputs are float tensors (N, T, F). Images (N, C, H, W) are read row by row, as T = H steps of
F = C * W features, as in Keras' ``mnist_hierarchical_rnn`` example (Le, Jaitly & Hinton 2015 use
the harder pixel-by-pixel variant). Training, loss, metrics and optimisers come from
:class:`~zoo.models.supervised.SupervisedModule`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchmetrics

from zoo.models.base import compute_and_reset
from zoo.models.supervised import SupervisedModule
from zoo.nets.rnn import RNNNet


class RecurrentModule(SupervisedModule):
    """What the recurrent models share: the input contract, normalisation, ``lengths`` and the net.

    ``mean``/``std`` hold one value per image channel, or per feature for sequences. The arguments
    after ``input_shape`` are those of :class:`~zoo.nets.rnn.RNNNet`, which checks them.

    Args:
        input_shape: one sample's shape: ``[T, F]`` sequences (``T`` may be null: any length) or
            ``[C, H, W]`` images read row by row.
        cell: ``rnn``, ``gru`` or ``lstm``.
        hidden_size: units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: read the sequence in both directions.
        dropout: between stacked layers and before the classifier.
        pooling: ``last`` state or ``mean`` over valid steps.
        **kwargs: see :class:`~zoo.models.supervised.SupervisedModule` (``num_classes``, ``lr`` ...).
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = (1, 28, 28),
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        shape = tuple(None if d is None else int(d) for d in input_shape)
        if len(shape) not in (2, 3) or any(d is not None and d < 1 for d in shape) or None in shape[1:]:
            raise ValueError(f"input_shape must be [T, F] (T may be null) or [C, H, W] with positive sizes, "
                             f"got {list(input_shape)}")
        self.input_shape = shape
        self.is_image = len(shape) == 3
        channels_or_features = shape[0] if self.is_image else shape[1]
        if self.input_mean is not None and len(self.input_mean) != channels_or_features:
            what = "channels" if self.is_image else "features"
            raise ValueError(f"mean/std need one value per input {what} ({channels_or_features}), "
                             f"got {len(self.input_mean)}")
        input_size = shape[0] * shape[2] if self.is_image else shape[1]
        self.build_net(RNNNet, input_size=input_size, out_features=self.num_outputs)

    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (N, T, F) sequence of a validated input."""
        if self.is_image:
            x = self.normalize(x)  # per channel, (N, C, H, W)
            n, c, h, w = x.shape
            return x.permute(0, 2, 1, 3).reshape(n, h, c * w)  # row r of every channel is step r
        if self.input_mean is None:
            return x
        return (x - self.input_mean) / self.input_std  # per feature, broadcast over (N, T, F)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs (N, num_outputs) for x of ``input_shape``; ``lengths`` (N,) for padded batches."""
        self.validate_input(x)
        return self.net(self.to_sequence(x), lengths)

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled recurrent features (N, num_features)."""
        self.validate_input(x)
        return self.net.forward_features(self.to_sequence(x), lengths)


class LSTMClassifier(RecurrentModule):
    """A recurrent sequence classifier (RNN, GRU or LSTM cells).

    It takes the arguments of :class:`RecurrentModule`. Exploding gradients are the classic failure
    of recurrent training (Pascanu, Mikolov & Bengio 2013); the recipes clip the gradient norm with
    ``trainer.gradient_clip_val``.
    """


def _naive_metrics() -> torchmetrics.MetricCollection:
    return torchmetrics.MetricCollection({"naive_mse": torchmetrics.MeanSquaredError(),
                                          "naive_mae": torchmetrics.MeanAbsoluteError()})


class LSTMForecaster(RecurrentModule):
    """Forecast the next ``horizon`` values of a series from a window of its past.

    Input windows are (N, T, F) with the forecast series as feature 0; targets are (N, horizon).
    Besides ``mse``/``mae`` every stage logs ``naive_mse``/``naive_mae`` of the last-value
    baseline (repeat the window's last value) on the same batches, so the two are always compared
    on the same split.

    Args:
        horizon: number of future values predicted.
        input_shape: ``[T, F]``: window length (``None``: any) and features per step.
        hidden_size: units per direction and layer.
        **kwargs: ``cell``, ``num_layers``, ``bidirectional``, ``dropout`` and ``pooling`` of
            :class:`RecurrentModule`, and the optimiser settings of
            :class:`~zoo.models.supervised.SupervisedModule`; ``regression_loss`` picks ``mse`` or
            ``mae`` training loss.
    """

    def __init__(self, horizon: int = 1, input_shape: Sequence[int | None] = (None, 1), hidden_size: int = 64,
                 **kwargs) -> None:
        if int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        # Rebuilding from saved hyperparameters passes task/num_classes back in; they must agree.
        task, num_classes = kwargs.pop("task", "regression"), kwargs.pop("num_classes", horizon)
        if task != "regression" or num_classes != horizon:
            raise ValueError(f"LSTMForecaster is a regression model with num_classes == horizon, "
                             f"got task={task!r}, num_classes={num_classes}")
        if len(input_shape) != 2:
            raise ValueError(f"input_shape must be [T, F] for a forecaster, got {list(input_shape)}")
        super().__init__(input_shape, hidden_size=hidden_size, task="regression", num_classes=int(horizon), **kwargs)
        self.horizon = int(horizon)
        self.train_naive, self.val_naive, self.test_naive = (_naive_metrics().clone(prefix=f"{s}/")
                                                             for s in ("train", "val", "test"))

    def naive_forecast(self, x: torch.Tensor) -> torch.Tensor:
        """The last-value baseline for windows x (N, T, F): feature 0's last value, (N, horizon)."""
        return x[:, -1:, 0].repeat(1, self.horizon)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        loss = super()._shared_step(batch, stage)
        x, y = batch
        naive = self.naive_forecast(x)
        target = y.to(naive.dtype).view_as(naive)
        if stage == "train":
            self.score_at_epoch_end("train_naive", naive, target)
        else:
            metrics = getattr(self, f"{stage}_naive")
            metrics.update(naive, target)
            self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss

    def training_metrics(self):
        return [*super().training_metrics(), self.train_naive]

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        return {**super().train_epoch_metrics(), **(compute_and_reset(self.train_naive) or {})}

