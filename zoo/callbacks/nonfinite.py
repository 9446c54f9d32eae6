"""The NaN guard: training stops at the first non-finite loss, with the step and the last good checkpoint."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from zoo.errors import ZooError


class NonFiniteLossError(ZooError, FloatingPointError):
    """Training produced a NaN/Inf loss; the message names the step and the last good checkpoint."""


class StopOnNonFiniteLoss(Callback):
    """Stop training at the first NaN/Inf training loss instead of training on garbage.

    It runs before the checkpoint callbacks of the same step, so ``last.ckpt`` keeps the last
    finite state.

    Reading the loss makes the host wait for the device. On the CPU that costs nothing and the loss
    is read after every step. On an accelerator (``defer=None`` decides by the loss's device) each
    step only writes, on the device, whether its loss was finite; the host reads those records
    every ``check_every_n_steps`` steps (default: ``Trainer(log_every_n_steps=...)``, the cadence at
    which the loggers read the device anyway), at the end of each epoch and before any checkpoint
    is written. The error names the first non-finite step either way.
    """

    def __init__(self, defer: bool | None = None, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1 or None, got {check_every_n_steps}")
        self.defer, self.check_every_n_steps = defer, check_every_n_steps
        self._finite: torch.Tensor | None = None  # per step since the last check, on the loss's device
        self._losses: torch.Tensor | None = None
        self._steps: list[tuple[int, int, int]] = []  # (global step, epoch, batch) of those steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float()
        finite = torch.isfinite(loss).all()
        loss = loss.reshape(-1)[0] if loss.numel() else loss.new_zeros(())
        where = (trainer.global_step, trainer.current_epoch, batch_idx)
        defer = self.defer if self.defer is not None else loss.device.type != "cpu"
        if not defer:
            if not bool(finite):
                self._stop(trainer, float(loss), *where)
            return
        window = self.check_every_n_steps or max(1, trainer.log_every_n_steps)
        if self._finite is None or self._finite.device != loss.device or len(self._finite) != window:
            self._check(trainer)
            self._finite = torch.ones(window, dtype=torch.bool, device=loss.device)
            self._losses = torch.zeros(window, device=loss.device)
        slot = len(self._steps)
        self._finite[slot] = finite  # device-side writes: nothing waits here
        self._losses[slot] = loss
        self._steps.append(where)
        if len(self._steps) == window:
            self._check(trainer)

    def _check(self, trainer) -> None:
        """Read the records kept since the last check (one device sync) and stop at a non-finite loss."""
        if not self._steps:
            return
        steps, self._steps = self._steps, []
        finite = self._finite[: len(steps)].tolist()
        if all(finite):
            return
        first = finite.index(False)
        self._stop(trainer, float(self._losses[first]), *steps[first])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._check(trainer)  # raising here leaves the previous checkpoint file in place

    def on_train_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    @staticmethod
    def _stop(trainer, value: float, step: int, epoch: int, batch_idx: int) -> None:
        saved = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
        last = next((path for path in saved if path), "none saved yet")
        raise NonFiniteLossError(
            f"training loss is {value} at global step {step} (epoch {epoch}, batch {batch_idx}); training "
            f"stopped. Last good checkpoint: {last}. "
            "Lower the learning rate, clip gradients (--trainer.gradient_clip_val 1.0) or check the inputs."
        )
