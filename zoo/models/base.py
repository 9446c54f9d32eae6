"""What every zoo model shares: input validation, in-model normalisation, pretrained I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric, MetricCollection

from zoo.errors import UsageError
from zoo.optim import build_optimizer, build_scheduler


def compute_and_reset(metric: Metric | MetricCollection) -> Any:
    """The metric's value over the epoch, then a reset for the next one; None if it saw no update.

    ``compute()`` gathers every DDP rank's state first, so the value is the same on all ranks.
    """
    parts = metric.values() if isinstance(metric, MetricCollection) else [metric]
    value = metric.compute() if any(part.update_called for part in parts) else None
    metric.reset()
    return value


class WeightedMean(Metric):
    """The weighted mean of the values it is given, over all DDP ranks: the epoch mean of a training loss.

    torchmetrics' ``MeanMetric`` checks every value for NaN, which reads it back to the host: on a
    GPU, a wait for the device at every training step. The zoo's NaN guard
    (:class:`~zoo.callbacks.StopOnNonFiniteLoss`) stops training at the first non-finite loss
    already, so this mean leaves the values on the device.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: float = 1.0) -> None:
        """Add ``value`` (a tensor; each of its elements) with ``weight``, e.g. a batch's mean loss and its size."""
        self.total += value.detach().float().sum() * weight
        self.weight += weight * value.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


class ZooModule(L.LightningModule):
    """Base class of all zoo models.

    Subclasses set ``input_shape`` (the shape of one sample, without the batch dimension) and
    ``monitor``/``monitor_mode`` (the validation key that early stopping and checkpointing follow).

    Training values are logged the cheap way: each ``self.log`` call of a training step costs
    about as much Python as the rest of Lightning's step (``benchmarks/overhead.py``), so training
    metrics are computed and logged once per epoch (:meth:`train_epoch_metrics`), and the per-step
    loss is logged only on the steps the loggers record (:meth:`is_logging_step`).
    """

    input_shape: tuple[int | None, ...] = ()
    # Image models take values in [0, 1]; None means any real value (sequences, regression inputs).
    input_range: tuple[float, float] | None = None
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    # Optimizer steps of one training batch: Trainer.global_step counts those, the loggers count batches.
    optimizer_steps_per_batch: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.train_loss = WeightedMean()  # the epoch mean of the training loss, see log_train_loss
        self._input_checked_in_training = False  # see validate_input

    # ----- what the model does ------------------------------------------------------------------
    # The tools around the models (zoo infer, sample, export, evaluate --report, the model cards,
    # --weights) ask a model these questions; none of them asks for its class. A family answers
    # them in its own file.

    #: what ``forward`` gives: ``"classes"`` (logits), ``"values"`` (regression outputs) or ``"images"`` in [0, 1]
    gives: str = "values"
    #: whether :meth:`sample` draws new images (a VAE, a GAN)
    can_sample: bool = False
    #: what ``zoo export --part`` can write: the forward (``"model"``), and for an autoencoder its ``"decoder"``
    export_parts: tuple[str, ...] = ("model",)

    @property
    def takes(self) -> str:
        """What ``forward`` takes: ``"images"`` (N, C, H, W) in [0, 1], ``"sequences"`` (N, T, F) of any
        length, ``"noise"`` (N, latent) or ``"features"`` (N, ...) of real values."""
        if any(d is None for d in self.input_shape):
            return "sequences"
        if len(self.input_shape) == 3:
            return "images"
        return "features"

    def embedding(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """One feature vector per input for the embedding projector, (N, D): a classifier's penultimate
        features, an autoencoder's codes; None for a model without such features (a GAN).

        Args:
            x: a batch of inputs the model takes, (N, ...).
            labels: their classes (N,), for a class-conditional model; None otherwise.
        """
        return None

    def frozen_front(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """What the input side of the model that no step of this fit changes computes from a batch of
        inputs: the same for an input in every epoch, so it can be computed once per input
        (:mod:`zoo.callbacks.frozen`). None (the default): no such part, or none worth caching."""
        return None

    def use_frozen_outputs(self, on: bool) -> None:
        """While on, training batches hold the outputs of :meth:`frozen_front` instead of inputs, and
        validation computes it once per batch; off: inputs again. On does nothing without a frozen front."""

    @property
    def table_contract(self) -> dict | None:
        """How raw table rows become this model's input, for a model trained on a table: the
        preprocessing :mod:`zoo.data.tabular` fitted (its columns, statistics, categories and target),
        which :func:`zoo.data.tabular.encode_rows` applies; None for a model that does not read tables."""
        return None

    @property
    def condition_classes(self) -> int | None:
        """How many classes a class-conditional model takes beside its input, ``model(x, labels)``
        (the conditional VAE and GAN); None for a model that takes no labels."""
        return None

    # ----- class names: said once, kept with the weights -----------------------------------------

    #: the name of each class, in order (None: unnamed); kept with checkpoints and weights
    class_names: list[str] | None = None

    @property
    def class_count(self) -> int | None:
        """How many classes :attr:`class_names` names: by default those a conditional model takes (None: none)."""
        return self.condition_classes

    def name_classes(self, names: Sequence[str]) -> None:
        """Set :attr:`class_names` (and the hyperparameter, so checkpoints and saved weights keep them)."""
        if self.class_count is None:
            raise UsageError(f"{type(self).__name__} has no classes to name")
        names = [str(name) for name in names]
        if len(names) != self.class_count:
            raise UsageError(f"class_names must name each of the {self.class_count} classes, got {len(names)} names")
        self.class_names = names
        self.hparams["class_names"] = list(names)

    def setup(self, stage: str) -> None:
        # Unnamed classes take the DataModule's names (MNIST's digits, an image folder's sub-folders),
        # so that every checkpoint and published weight says what its classes mean.
        names = getattr(self.trainer.datamodule, "class_names", None) or ()
        if self.class_names is None and self.class_count is not None and len(names) == self.class_count:
            self.name_classes(names)

    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images (for a model whose :attr:`can_sample` is True)."""
        raise UsageError(f"{type(self).__name__} does not draw samples: it maps its input to {self.gives}")

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What each hidden layer outputs for ``x``, input side first, each (N, ...): the activations the
        initialisation experiment draws (:mod:`zoo.experiments`). By default a model does not say."""
        raise UsageError(f"{type(self).__name__} does not list its hidden layers' activations")

    def exported_module(self, part: str = "model") -> tuple[torch.nn.Module, tuple[int, ...], str]:
        """What ``zoo export`` writes for ``part`` (one of :attr:`export_parts`): the module, the shape of
        one input without the batch dimension, and what the input is (``"images"`` or ``"noise"``)."""
        if part not in self.export_parts:
            raise UsageError(f"{type(self).__name__} has no {part} to export: it exports {' and '.join(self.export_parts)} "
                             "(part 'decoder' is for autoencoders)")
        shape = tuple(self.input_shape)
        if not shape or any(d is None for d in shape):
            raise UsageError(f"{type(self).__name__} takes inputs of shape {shape}; only fixed-size inputs export")
        return self, shape, "noise" if self.takes == "noise" else "images"

    def describe_input(self, batch: str, shape: tuple[int, ...], kind: str) -> str:
        """What the exported module takes for a batch of ``batch`` (``"N"`` or ``"1"``) inputs of one-input
        ``shape`` and ``kind`` (see :meth:`exported_module`), in words."""
        dims = ", ".join(str(d) for d in shape)
        table = self.table_contract
        if kind == "noise":
            text = f"float32 noise ({batch}, {dims}) drawn from N(0, I)"
        elif table is not None:
            names = [column["name"] for column in table["columns"]]
            text = (f"float32 features ({batch}, {dims}): the table columns {', '.join(names)} as "
                    "zoo.data.tabular.encode_rows makes them (numbers standardised, gaps filled with the training "
                    "median and flagged, categories one-hot), as zoo infer reads rows")
        else:
            from zoo.data.framing import AUTO, chosen_framing

            channels = {1: "grayscale", 3: "RGB"}.get(shape[0], f"{shape[0]}-channel")
            framing = chosen_framing(AUTO, self.hparams.get("input_framing"))
            prepared = (f"framed as {framing.title}: {framing.summary} (zoo.data.framing.frame_image, "
                        if framing is not None else f"the shorter side resized to {shape[-1]} and centre-cropped (")
            text = (f"float32 {channels} images ({batch}, {dims}) with values in [0, 1]: pixels / 255, {prepared}"
                    "as zoo infer reads files); the model normalises them itself")
        if self.condition_classes is not None:
            text += (f", and int64 labels ({batch},): the class of each image, in [0, {self.condition_classes - 1}] "
                     "(class_names gives their names)")
        return text

    def describe_output(self, batch: str, output_shape: tuple[int, ...]) -> str:
        """What the exported forward gives for a batch of ``batch`` (``"N"`` or ``"1"``) inputs, in words."""
        dims = ", ".join(str(d) for d in output_shape)
        return f"outputs ({batch}, {dims})"

    @classmethod
    def weights_start(cls, weights: str, hparams: dict[str, Any],
                      new_head: bool = False) -> tuple[dict[str, Any], Callable[[ZooModule], None]]:
        """How ``weights`` start a model of this class built from ``hparams``: the hyperparameters the
        weights decide where ``hparams`` leaves them unset, and what loads the weights into the built
        model. ``zoo fit --weights`` and :meth:`with_weights` both go this way, so the model is always
        built from plain values, and a checkpoint rebuilds it without the weights file."""
        raise UsageError(f"{cls.__name__} does not start from pretrained weights: the classifiers and regressors "
                         "do, and a GAN from a VAE's decoder (to load zoo weights of any model, use zoo.load_pretrained)")

    @classmethod
    def with_weights(cls, weights: str, *, new_head: bool = False, **hparams) -> ZooModule:
        """A model of this class started from pretrained ``weights`` (see :meth:`weights_start`)."""
        settings, start = cls.weights_start(weights, hparams, new_head)
        model = cls(**hparams, **settings)
        start(model)
        return model

    def input_check_due(self) -> bool:
        """Whether this input needs checking: always, except for the training batches of an epoch whose
        first batch was checked (see :meth:`validate_input`)."""
        return not (torch.compiler.is_compiling() or (self._input_checked_in_training and self.training))

    def mark_input_checked(self) -> None:
        """Record that this training epoch's input was checked (under a Trainer only)."""
        if self.training and self.fitting_trainer() is not None:
            self._input_checked_in_training = True

    # ----- training logs ------------------------------------------------------------------------

    def fitting_trainer(self) -> L.Trainer | None:
        """The Trainer running this module's training loop right now, else None (e.g. a step called by hand)."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer
            return None
        return trainer if trainer.training else None

    def is_logging_step(self) -> bool:
        """Whether the loggers record this training step: every ``Trainer(log_every_n_steps=...)`` batches.

        Lightning keeps values logged on other steps only for the progress bar, so they are not logged.
        """
        trainer = self.fitting_trainer()
        if trainer is None:
            return False
        every = trainer.log_every_n_steps
        batches_before = trainer.global_step // self.optimizer_steps_per_batch
        return bool(trainer.fast_dev_run) or (every > 0 and (batches_before + 1) % every == 0)

    def training_metrics(self) -> list[Metric | MetricCollection]:
        """The metrics training steps update; reset when a training epoch starts."""
        return [self.train_loss]

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        """The training metrics of the epoch that just ended, computed over all DDP ranks, then reset.

        Subclasses that track training metrics return them here; ``train/loss_epoch`` is added by
        :meth:`log_train_epoch`.
        """
        return {}

    def on_train_epoch_start(self) -> None:
        self._input_checked_in_training = False  # see validate_input
        for metric in self.training_metrics():  # values left by an epoch that ended in an exception
            metric.reset()

    def on_train_end(self) -> None:
        self._input_checked_in_training = False

    def on_train_epoch_end(self) -> None:
        self.log_train_epoch(self.train_epoch_metrics())

    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Record the training loss: ``train/loss_step`` on logging steps, ``train/loss_epoch`` at epoch end."""
        self.train_loss.update(loss.detach(), batch_size)
        if self.is_logging_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)

    def log_train_epoch(self, values: dict[str, torch.Tensor] | None = None) -> None:
        """Log the epoch mean of the training loss and ``values`` (already reduced over DDP ranks).

        Called by :meth:`on_train_epoch_end`.
        """
        logged = dict(values or {})
        loss = compute_and_reset(self.train_loss)
        if loss is not None:
            logged["train/loss_epoch"] = loss
        if logged:
            self.log_dict(logged, prog_bar=False, sync_dist=True)

    # ----- inputs -------------------------------------------------------------------------------

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
        if not self.input_check_due():
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
        self.mark_input_checked()

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
