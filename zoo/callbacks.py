"""The callbacks every recipe shares: ``default_callbacks(...)`` around one monitored key, and image logging."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)

from zoo.checkpointing import LastCheckpoint


def is_logging_step(trainer) -> bool:
    """Whether the loggers record this training step (every ``trainer.log_every_n_steps`` steps)."""
    connector = getattr(trainer, "_logger_connector", None)
    if connector is None or not hasattr(connector, "should_update_logs"):
        return True  # an unknown Lightning internals layout: treat every step as one (slower, never wrong)
    return bool(connector.should_update_logs or trainer.fast_dev_run)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/Inf loss; the message names the step and the last good checkpoint."""


class StopOnNonFiniteLoss(Callback):
    """Stop training at the first NaN/Inf training loss instead of training on garbage.

    It runs before the checkpoint callbacks of the same step, so ``last.ckpt`` keeps the last
    finite state.

    Reading the loss makes the host wait for the device. On the CPU that costs nothing and the loss
    is read after every step. On an accelerator (``defer=None`` decides by the loss's device) each
    step only writes, on the device, whether its loss was finite; the host reads those records
    every ``check_every_n_steps`` steps (default: on the loggers' steps, which read the device
    anyway), at the end of each epoch and before any checkpoint is written. The error names the
    first non-finite step either way.
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
        due = is_logging_step(trainer) if self.check_every_n_steps is None else False
        if due or len(self._steps) == window:
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
        progress_bar: use Lightning's rich progress bar.
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
        callbacks.append(RichProgressBar())
    return callbacks


# --- Image logging ------------------------------------------------------------------------------
# Logger-agnostic: every picture is written as a PNG under <log_dir>/images/ and, when a TensorBoard
# or Weights & Biases logger is active, also sent to it. Only rank zero draws and writes.

# The 10-colour "tab10" palette (Vega / matplotlib), one colour per class in scatter plots.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def image_grid(images, nrow: int | None = None, padding: int = 2):
    """Tile images (N, C, H, W) in [0, 1] into one picture (3, H', W'), ``nrow`` per row.

    Args:
        images: the images; any N >= 1 (the last row may be partly empty).
        nrow: images per row; None: ceil(sqrt(N)), a near-square grid.
        padding: pixels between images.
    """
    from torchvision.utils import make_grid

    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"expected images of shape (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(0, 1)
    if len(images) == 1:  # make_grid returns a lone image without its frame; keep the layout uniform
        rgb = images[0].expand(3, -1, -1) if images.shape[1] == 1 else images[0]
        return torch.nn.functional.pad(rgb, (padding,) * 4, value=1.0)
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    return make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)


def pair_grid(inputs, outputs, padding: int = 2):
    """Each input image followed by its output (e.g. reconstruction), ceil(sqrt(N)) pairs per row."""
    if inputs.shape != outputs.shape:
        raise ValueError(f"inputs and outputs differ in shape: {tuple(inputs.shape)} vs {tuple(outputs.shape)}")
    pairs = torch.stack([inputs, outputs], dim=1).flatten(0, 1)  # (2N, C, H, W): x0, y0, x1, y1, ...
    return image_grid(pairs, nrow=2 * math.ceil(math.sqrt(len(inputs))), padding=padding)


def scatter_plot(points, labels=None, size: int = 480, class_names=None):
    """A PIL scatter plot of 2-D ``points`` (N, 2), coloured by integer ``labels`` (N,), with a legend.

    Args:
        points: the coordinates, e.g. 2-D codes.
        labels: class index of each point (None: all one colour).
        size: width and height of the picture in pixels.
        class_names: legend text per class (None: the class indices).
    """
    from PIL import Image, ImageDraw

    points = points.detach().float().cpu()
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), got {tuple(points.shape)}")
    labels = labels.detach().cpu().long() if labels is not None else None
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    margin, legend_width = 20, 70
    plot_right = size - legend_width
    draw.rectangle([margin, margin, plot_right, size - margin], outline=(0, 0, 0))
    low, high = points.min(0).values, points.max(0).values
    span = (high - low).clamp_min(1e-8)
    scale = torch.tensor([plot_right - 2 * margin - 8, size - 2 * margin - 8], dtype=torch.float32)
    # Screen coordinates: x grows right, y grows up (hence the flip).
    xy = (points - low) / span * scale
    xs = margin + 4 + xy[:, 0]
    ys = size - margin - 4 - xy[:, 1]
    for i in range(len(points)):
        colour = PALETTE[int(labels[i]) % len(PALETTE)] if labels is not None else PALETTE[0]
        x, y = float(xs[i]), float(ys[i])
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    if labels is not None:
        for row, cls in enumerate(sorted(set(labels.tolist()))):
            y = margin + 14 * row
            draw.rectangle([plot_right + 10, y + 2, plot_right + 18, y + 10], fill=PALETTE[cls % len(PALETTE)])
            name = class_names[cls] if class_names is not None and cls < len(class_names) else str(cls)
            draw.text((plot_right + 22, y), str(name)[:7], fill=(0, 0, 0))
    return image


def _first_tensor(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _point_code(model, x):
    """One code vector per image: ``model.encode(x)``, or its first element (a VAE's mean)."""
    code = model.encode(x)
    return code[0] if isinstance(code, (tuple, list)) else code


class ImageLogger(Callback):
    """Base of the image callbacks: runs after validation every ``every_n_epochs`` epochs.

    Subclasses implement :meth:`make_image`, returning a (3, H, W) tensor in [0, 1] or None. The
    picture goes to ``<log_dir>/images/<tag>_epoch<NNN>.png`` and to TensorBoard / W&B when active.

    Args:
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "images"

    def __init__(self, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.last_path = None

    def make_image(self, trainer, pl_module):
        raise NotImplementedError

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        # Every rank must ask: under DDP, Trainer.log_dir is a broadcast (a collective call).
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "images"
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            image = self.make_image(trainer, pl_module)
        pl_module.train(was_training)
        if image is not None:
            self.last_path = self.write(trainer, image, folder)

    def write(self, trainer, image, folder: Path | None = None):
        """Save ``image`` (3, H, W) as PNG in ``folder`` (default: the run's ``images/``) and send it to
        the active image loggers."""
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
        from torchvision.transforms.functional import to_pil_image
        from torchvision.utils import save_image

        folder = folder or Path(trainer.log_dir or trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.tag}_epoch{trainer.current_epoch:03d}.png"
        save_image(image, path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.tag, image, global_step=trainer.global_step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(key=self.tag, images=[to_pil_image(image)], step=trainer.global_step)
        return path


class _ValidationImages(ImageLogger):
    """Keeps the first ``count`` validation images (and labels) of each validation epoch."""

    def __init__(self, count: int, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if count < 1:
            raise ValueError(f"the number of images must be >= 1, got {count}")
        self.count = count
        self._images, self._labels = [], []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._images, self._labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        kept = sum(len(x) for x in self._images)
        if dataloader_idx != 0 or kept >= self.count:
            return
        self._images.append(_first_tensor(batch)[: self.count - kept].detach().clone())
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            self._labels.append(batch[1][: self.count - kept].detach().clone())

    def images(self):
        return torch.cat(self._images) if self._images else None

    def labels(self):
        return torch.cat(self._labels) if self._labels else None


class ReconstructionImages(_ValidationImages):
    """Validation images next to the model's reconstructions ``model(x)``: input, output, input, output ...

    Args:
        num_images: how many validation images to show.
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "reconstructions"

    def __init__(self, num_images: int = 32, every_n_epochs: int = 1) -> None:
        super().__init__(num_images, every_n_epochs)

    def make_image(self, trainer, pl_module):
        x = self.images()
        return None if x is None else pair_grid(x, pl_module(x))


class SampleImages(ImageLogger):
    """Images from ``model.sample(n)`` with a fixed seed, so every epoch shows the same noise batch.

    Works for any model with ``sample(n)`` (VAE, GAN). The global random state is left untouched.

    Args:
        num_samples: images per picture.
        seed: seed of the noise batch.
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "samples"

    def __init__(self, num_samples: int = 64, seed: int = 0, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples, self.seed = num_samples, seed

    def make_image(self, trainer, pl_module):
        device = pl_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            samples = pl_module.sample(self.num_samples)
        return image_grid(samples)


class LatentInterpolation(_ValidationImages):
    """Rows of decoded linear interpolations between the codes of two validation images.

    Each row: first image, ``steps`` decoded points from its code to the other's, second image.
    Needs ``model.encode`` (a code, or a tuple whose first element is one) and ``model.decode``.

    Args:
        num_pairs: rows (pairs of validation images).
        steps: decoded points per row, end points included.
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "interpolation"

    def __init__(self, num_pairs: int = 4, steps: int = 10, every_n_epochs: int = 1) -> None:
        super().__init__(2 * num_pairs, every_n_epochs)
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        self.steps = steps

    def make_image(self, trainer, pl_module):
        x = self.images()
        if x is None or len(x) < 2:
            return None
        x = x[: len(x) // 2 * 2]
        code = _point_code(pl_module, x)
        start, end = code[0::2], code[1::2]  # (P, D) each
        t = torch.linspace(0, 1, self.steps, device=code.device).view(1, -1, 1)  # (1, S, 1)
        path = (1 - t) * start[:, None] + t * end[:, None]  # (P, S, D)
        decoded = pl_module.decode(path.flatten(0, 1)).view(len(start), self.steps, *x.shape[1:])
        rows = torch.cat([x[0::2, None], decoded.to(x.dtype), x[1::2, None]], dim=1)  # (P, S + 2, C, H, W)
        return image_grid(rows.flatten(0, 1), nrow=self.steps + 2)


class LatentScatter(_ValidationImages):
    """For models with 2-D codes: the codes of validation images as a scatter plot coloured by label.

    Models whose code is not 2-D are skipped (with no picture).

    Args:
        num_points: validation images to plot.
        size: picture width and height in pixels.
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "latent_scatter"

    def __init__(self, num_points: int = 2000, size: int = 480, every_n_epochs: int = 1) -> None:
        super().__init__(num_points, every_n_epochs)
        self.size = size

    def make_image(self, trainer, pl_module):
        from torchvision.transforms.functional import pil_to_tensor

        x = self.images()
        if x is None:
            return None
        code = _point_code(pl_module, x)
        if code.ndim != 2 or code.shape[1] != 2:
            return None
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        picture = scatter_plot(code, self.labels(), size=self.size, class_names=names)
        return pil_to_tensor(picture).float() / 255
