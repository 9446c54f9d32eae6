"""The callbacks every recipe shares, built by one function around one monitored key."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/Inf loss; the message names the step and the last good checkpoint."""


class StopOnNonFiniteLoss(Callback):
    """Stop training at the first NaN/Inf training loss instead of training on garbage.

    It runs before the checkpoint callbacks of the same step, so ``last.ckpt`` keeps the last
    finite state.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss).all()):
            return
        saved = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
        last = next((path for path in saved if path), "none saved yet")
        raise NonFiniteLossError(
            f"training loss is {loss.detach().float().cpu().tolist()} at global step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, batch {batch_idx}); training stopped. Last good checkpoint: {last}. "
            "Lower the learning rate, clip gradients (--trainer.gradient_clip_val 1.0) or check the inputs."
        )


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
        progress_bar: use a rich progress bar.
        last_every_n_steps: also refresh ``last.ckpt`` every this many training steps, so that a
            crash mid-epoch loses at most that many steps (None: at the end of each epoch only).

    Checkpointing keeps the best checkpoint (``best-...ckpt``) and the latest one (``last.ckpt``,
    for ``--ckpt_path last`` resumes).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if last_every_n_steps is not None and last_every_n_steps < 1:
        raise ValueError(f"last_every_n_steps must be >= 1 or None, got {last_every_n_steps}")
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
        # last.ckpt on its own schedule: a monitored checkpoint cannot save mid-epoch, before the
        # monitored value exists.
        ModelCheckpoint(dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=last_every_n_steps),
    ]
    callbacks.append(StopOnNonFiniteLoss())
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if lr_monitor:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if progress_bar:
        callbacks.append(RichProgressBar())
    return callbacks
