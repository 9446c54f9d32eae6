"""What every zoo model shares: input validation, in-model normalisation, pretrained I/O."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric, Metric, MetricCollection

from zoo._cuda_check import drop_unusable_nvml_check
from zoo.callbacks import is_logging_step
from zoo.optim import build_optimizer, build_scheduler

drop_unusable_nvml_check()  # set by the lightning import above; see zoo._cuda_check


def compute_and_reset(metric: Metric | MetricCollection) -> Any:
    """The metric's value over the epoch, then a reset for the next one; None if it saw no update.

    ``compute()`` gathers every DDP rank's state first, so the value is the same on all ranks.
    """
    parts = metric.values() if isinstance(metric, MetricCollection) else [metric]
    value = metric.compute() if any(part.update_called for part in parts) else None
    metric.reset()
    return value


class ZooModule(L.LightningModule):
    """Base class of all zoo models.

    Subclasses set ``input_shape`` (the shape of one sample, without the batch dimension) and
    ``monitor``/``monitor_mode`` (the validation key that early stopping and checkpointing follow).
    """

    input_shape: tuple[int | None, ...] = ()
    # Image models take values in [0, 1]; None means any real value (sequences, regression inputs).
    input_range: tuple[float, float] | None = None
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    # Training steps apply their metric updates in batches of this many steps (or sooner, once this
    # many values are waiting), and at the end of the epoch; see defer_update.
    update_every_n_steps: int = 64
    update_max_values: int = 2**22

    def __init__(self) -> None:
        super().__init__()
        self.train_loss = MeanMetric()  # the epoch mean of the training loss, see log_train_loss
        self._pending_updates: dict[str, list[tuple]] = {}
        self._input_checked_in_training = False  # see validate_input

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning names the running hook in _current_fx_name before and after every hook it calls,
        # about 40 times a training step. nn.Module.__setattr__ looks for parameters, buffers and
        # submodules first (0.9 µs against 0.15 µs); the name only ever holds a string or None.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----- cheap training logs ----------------------------------------------------------------------
    # Per training step, each self.log call costs about half a millisecond and each torchmetrics
    # update 20-40 µs of Python, against about 5 ms for a whole LeNet-5 step on a CPU
    # (benchmarks/overhead.py). So training values are logged once per epoch, the per-step loss only
    # on the steps the loggers record, and metric updates of training steps are applied in batches.

    def defer_update(self, metric: str, *args: Any) -> None:
        """``getattr(self, metric).update(*args)``, applied later together with other steps' updates.

        Tensors are detached and kept until :meth:`flush_updates`, which concatenates each argument
        along the batch dimension (stacks 0-d tensors; turns numbers into a float tensor) and calls
        ``update`` once. This runs every ``update_every_n_steps`` calls, when ``update_max_values``
        values are waiting, and at the end of every training epoch. The results equal per-step
        updates for metrics whose state is a sum over samples (accuracy, mean, MSE, ...).
        """
        pending = self._pending_updates.setdefault(metric, [])
        pending.append(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))
        first = pending[0][0]
        waiting = len(pending) * (first.numel() if isinstance(first, torch.Tensor) else 1)
        if len(pending) >= self.update_every_n_steps or waiting >= self.update_max_values:
            self._flush(metric)

    def flush_updates(self) -> None:
        """Apply every update :meth:`defer_update` is holding back."""
        for metric in list(self._pending_updates):
            self._flush(metric)

    def _flush(self, metric: str) -> None:
        pending = self._pending_updates.pop(metric, [])
        if not pending:
            return
        columns = list(zip(*pending))
        device = next((c[0].device for c in columns if isinstance(c[0], torch.Tensor)), None)
        merged = [(torch.stack(c) if c[0].ndim == 0 else torch.cat(c)) if isinstance(c[0], torch.Tensor)
                  else torch.tensor(c, dtype=torch.float32, device=device) for c in columns]
        getattr(self, metric).update(*merged)

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        """The training metrics of the epoch that just ended, computed over all DDP ranks, then reset.

        Subclasses that track training metrics return them here; ``train/loss_epoch`` is added by
        :meth:`log_train_epoch`.
        """
        return {}

    def on_train_epoch_start(self) -> None:
        self._input_checked_in_training = False  # see validate_input
        self._pending_updates.clear()  # left over only by an epoch that ended in an exception

    def on_train_end(self) -> None:
        self._input_checked_in_training = False

    def on_train_epoch_end(self) -> None:
        self.flush_updates()
        self.log_train_epoch(self.train_epoch_metrics())

    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Record the training loss: ``train/loss_step`` on logging steps, ``train/loss_epoch`` at epoch end."""
        self.defer_update("train_loss", loss, batch_size)  # MeanMetric.update(value, weight)
        if self._is_logging_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)

    def _is_logging_step(self) -> bool:
        trainer = self._trainer
        if trainer is None:  # a step called by hand: there is nothing to log into
            return False
        return is_logging_step(trainer)

    def log_train_epoch(self, values: dict[str, torch.Tensor] | None = None) -> None:
        """Log the epoch mean of the training loss and ``values`` (already reduced over DDP ranks).

        Called by :meth:`on_train_epoch_end` once it has applied the deferred updates.
        """
        logged = dict(values or {})
        loss = compute_and_reset(self.train_loss)
        if loss is not None:
            logged["train/loss_epoch"] = loss
        if logged:
            self.log_dict(logged, prog_bar=False, sync_dist=True)

    def _register_normalization(self, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        """Store per-channel mean/std as buffers; they come from the hyperparameters, not the weights file."""
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (or both left as None)")
        if mean is None:
            self.input_mean = self.input_std = None
            return
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
        std_t = torch.as_tensor(list(std), dtype=torch.float32)
        if mean_t.shape != std_t.shape or mean_t.ndim != 1:
            raise ValueError(f"mean and std need one value per channel, got {list(mean)} and {list(std)}")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.register_buffer("input_mean", mean_t, persistent=False)
        self.register_buffer("input_std", std_t, persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean is None:
            return x
        view = (1, -1) + (1,) * (x.ndim - 2)  # broadcast over channels: (1, C, 1, 1) for images
        return (x - self.input_mean.view(view)) / self.input_std.view(view)

    def _expected_shape(self) -> str:
        # A None in input_shape is a free size (e.g. the length T of a sequence).
        return "(N, " + ", ".join("T" if d is None else str(d) for d in self.input_shape) + ")"

    def validate_input(self, x: Any) -> None:
        """Raise a clear error for inputs the model cannot take, before any layer sees them.

        Under a Trainer, training batches are checked once per epoch, on the first batch: one
        training run's batches share their type, dtype and shape, and the range check reads values
        (a device sync). Every other call, evaluation and inference included, checks every input.
        Graphs traced by ``torch.compile`` or ``torch.export`` leave the checks out: they read tensor
        values and raise Python errors, which such graphs cannot hold; the eager model keeps them.
        """
        if torch.compiler.is_compiling() or (self._input_checked_in_training and self.training):
            return
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor of shape {self._expected_shape()}, got {type(x).__name__}")
        if not x.is_floating_point():
            hint = " (images in 0-255: use x.float() / 255)" if x.dtype == torch.uint8 else ""
            raise TypeError(f"{name} expects a floating-point tensor, got dtype {x.dtype}{hint}")
        weight = next(self.parameters(), None)
        if weight is not None and weight.is_floating_point() and x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"{name} has {weight.dtype} weights but got a {x.dtype} input: convert it with x.to({weight.dtype})")
        fixed_sizes_match = all(d is None or d == got for d, got in zip(self.input_shape, x.shape[1:]))
        if x.ndim != len(self.input_shape) + 1 or not fixed_sizes_match:
            got = "(" + ", ".join(str(d) for d in x.shape) + ")"
            raise ValueError(f"{name} expects input of shape {self._expected_shape()}, got {got}")
        if self.input_range is not None and x.numel():
            low, high = self.input_range
            x_min, x_max = float(x.min()), float(x.max())
            tolerance = 1e-3
            if not (low - tolerance <= x_min and x_max <= high + tolerance):
                hint = " (0-255 pixel values: divide by 255)" if x_max > 2 else ""
                raise ValueError(
                    f"{name} expects values in [{low:g}, {high:g}], got values in [{x_min:.4g}, {x_max:.4g}]{hint}; "
                    "the model normalises its input itself"
                )
        if self.training and self._trainer is not None and self._trainer.training:
            self._input_checked_in_training = True

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def optimizer_groups(self):
        """What the optimiser updates: parameters or parameter groups (fine-tuning gives the backbone its own rate)."""
        return self.parameters()

    def configure_optimizers(self):
        """One optimiser, and a learning-rate schedule stepped every batch, from the hyperparameters
        ``optimizer``, ``lr``, ``weight_decay``, ``momentum`` and ``scheduler`` (see :mod:`zoo.optim`)."""
        hp = self.hparams
        optimizer = build_optimizer(self.optimizer_groups(), hp.optimizer, hp.lr, hp.weight_decay, hp.momentum)
        if hp.scheduler == "none":  # estimated_stepping_batches would build the training loader once more
            return optimizer
        scheduler = build_scheduler(optimizer, hp.scheduler, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The RNG states make a resumed run draw the same dropout masks and augmentations as an
        # uninterrupted one. Plain tensors and tuples only: loadable with weights_only=True.
        checkpoint["zoo_rng"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("zoo_rng")
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        random.setstate(state["python"])

    def save_pretrained(self, directory: str | Path, metrics: dict[str, float] | None = None) -> Path:
        """Write ``model.safetensors`` and ``config.json`` (class, hyperparameters, sha256, metrics)."""
        from zoo.weights import save_pretrained

        return save_pretrained(self, directory, metrics=metrics)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path) -> ZooModule:
        """Load shipped weights by name, or a folder written by :meth:`save_pretrained`."""
        from zoo.weights import load_pretrained

        model = load_pretrained(name_or_dir)
        if not isinstance(model, cls):
            raise TypeError(f"{name_or_dir!r} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
