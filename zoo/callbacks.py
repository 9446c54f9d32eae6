"""The callbacks every recipe shares, built by one function around one monitored key."""

from __future__ import annotations

from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)


def default_callbacks(
    monitor: str = "val/loss",
    mode: str = "min",
    patience: int | None = 10,
    dirpath: str | None = None,
    lr_monitor: bool = True,
    progress_bar: bool = True,
) -> list[Callback]:
    """Early stopping and checkpointing on the same key, plus LR logging and a rich progress bar.

    Args:
        monitor: the logged metric both EarlyStopping and ModelCheckpoint follow (a model's
            ``monitor`` attribute, e.g. ``val/acc``).
        mode: ``max`` if larger is better, else ``min`` (a model's ``monitor_mode``).
        patience: validation rounds without improvement before stopping; None disables early stopping.
        dirpath: checkpoint folder; None puts it in the logger's run folder.
        lr_monitor: log the learning rate (needs a logger).
        progress_bar: use a rich progress bar.

    The checkpoint callback keeps the best checkpoint (``best-...ckpt``) and the latest one
    (``last.ckpt``, for ``--ckpt_path last`` resumes).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=dirpath,
            monitor=monitor,
            mode=mode,
            save_last=True,
            save_top_k=1,
            # "/" in metric names would create sub-folders; auto_insert_metric_name=False avoids that.
            filename="best-epoch{epoch:03d}-" + monitor.replace("/", "_") + "{" + monitor + ":.4f}",
            auto_insert_metric_name=False,
        )
    ]
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if lr_monitor:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if progress_bar:
        callbacks.append(RichProgressBar())
    return callbacks
