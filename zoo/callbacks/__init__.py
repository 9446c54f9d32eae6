"""The callbacks every recipe shares: ``default_callbacks(...)`` around one monitored key, the NaN guard
and the image callbacks.

    zoo.callbacks.default_callbacks      early stopping, best and last checkpoints, NaN guard, LR, progress
    zoo.callbacks.StopOnNonFiniteLoss    (nonfinite.py) stop at the first NaN/Inf training loss
    zoo.callbacks.ReconstructionImages   (images.py) inputs next to reconstructions; also SampleImages,
                                         LatentInterpolation, LatentScatter
    zoo.checkpointing.LastCheckpoint     last.ckpt after every epoch (and every N steps)
    zoo.finetune.GradualUnfreezing       one more backbone stage every N epochs
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)

from zoo.callbacks.images import ImageLogger, LatentInterpolation, LatentScatter, ReconstructionImages, SampleImages
from zoo.callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from zoo.checkpointing import LastCheckpoint

__all__ = [
    "ImageLogger", "LatentInterpolation", "LatentScatter", "NonFiniteLossError", "ProgressBar", "ReconstructionImages",
    "SampleImages", "StopOnNonFiniteLoss", "default_callbacks",
]


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, redrawn at most ``redraws_per_second`` times a second in training.

    Lightning redraws it, and reads the logged values it shows, after every training batch: on small
    models that is a few percent of the training time (``python -m benchmarks.time_to_accuracy``),
    for a change no one can read at hundreds of batches a second. The last batch of an epoch is
    always drawn.
    """

    def __init__(self, redraws_per_second: float = 20.0) -> None:
        super().__init__()
        self.redraw_interval = 1.0 / redraws_per_second
        self.drawn_at = float("-inf")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.drawn_at < self.redraw_interval and batch_idx + 1 < self.total_train_batches:
            return
        self.drawn_at = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def default_callbacks(
    monitor: str = "val/loss",
    mode: str = "min",
    patience: int | None = 10,
    dirpath: str | None = None,
    lr_monitor: bool = True,
    progress_bar: bool = True,
    last_every_n_steps: int | None = None,
) -> list[Callback]:
    """Early stopping and checkpointing on the same key, a NaN guard, LR logging and a progress bar.

    Args:
        monitor: the logged metric both EarlyStopping and ModelCheckpoint follow (a model's
            ``monitor`` attribute, e.g. ``val/acc``).
        mode: ``max`` if larger is better, else ``min`` (a model's ``monitor_mode``).
        patience: validation rounds without improvement before stopping; None disables early stopping.
        dirpath: checkpoint folder; None puts it in the logger's run folder.
        lr_monitor: log the learning rate (needs a logger).
        progress_bar: show Lightning's rich progress bar (:class:`ProgressBar`).
        last_every_n_steps: also refresh ``last.ckpt`` every this many training steps, so that a
            crash mid-epoch loses at most that many steps (None: at the end of each epoch only).

    Checkpointing keeps the best checkpoint (``best-...ckpt``) and the latest one (``last.ckpt``,
    written after every training epoch, for ``zoo fit --ckpt_path last``; from Python pass its
    path, ``<run folder>/checkpoints/last.ckpt``, as ``ckpt_path``).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    callbacks: list[Callback] = [
        # First, so that it is `trainer.checkpoint_callback` and `ckpt_path="best"` finds it.
        ModelCheckpoint(
            dirpath=dirpath,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            # "/" in metric names would create sub-folders; auto_insert_metric_name=False avoids that.
            filename="best-epoch{epoch:03d}-" + monitor.replace("/", "_") + "{" + monitor + ":.4f}",
            auto_insert_metric_name=False,
        ),
        # last.ckpt on its own schedule (every epoch end, optionally every N steps): a monitored
        # checkpoint cannot save mid-epoch, before the monitored value exists.
        LastCheckpoint(dirpath=dirpath, every_n_train_steps=last_every_n_steps),
    ]
    callbacks.append(StopOnNonFiniteLoss())
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if lr_monitor:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if progress_bar:
        callbacks.append(ProgressBar())
    return callbacks
