"""Image callbacks, logger-agnostic: every picture is written as a PNG under ``<log_dir>/images/`` and,
when a TensorBoard or Weights & Biases logger is active, also sent to it. Only rank zero draws and writes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from zoo.drawing import image_grid, pair_grid, scatter_plot
from zoo.models.labels import label_kwargs


def _first_tensor(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _point_code(model, x, labels=None):
    """One code vector per image: ``model.encode(x)``, or its first element (a VAE's mean)."""
    code = model.encode(x, **label_kwargs(model, labels))
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

    A class-conditional model reconstructs each image given its label, ``model(x, labels)``.

    Args:
        num_images: how many validation images to show.
        every_n_epochs: draw after every n-th validation epoch.
    """

    tag = "reconstructions"

    def __init__(self, num_images: int = 32, every_n_epochs: int = 1) -> None:
        super().__init__(num_images, every_n_epochs)

    def make_image(self, trainer, pl_module):
        x = self.images()
        return None if x is None else pair_grid(x, pl_module(x, **label_kwargs(pl_module, self.labels())))


def class_grid(model, per_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples of a class-conditional model, one row per class: (num_classes * per_class, C, H, W)."""
    labels = torch.arange(model.condition_classes).repeat_interleave(per_class)
    return model.sample(len(labels), labels=labels, generator=generator)


class SampleImages(ImageLogger):
    """Images from ``model.sample(n)`` with a fixed seed, so every epoch shows the same noise batch.

    Works for any model that can sample (``can_sample``: a VAE, a GAN). A class-conditional model (one
    with ``condition_classes``) gets a class-by-row grid instead: ``per_class`` samples of each class.
    The global random state is left untouched.

    Args:
        num_samples: images per picture of an unconditional model.
        seed: seed of the noise batch.
        every_n_epochs: draw after every n-th validation epoch.
        per_class: images per row (class) of a conditional model's grid.
    """

    tag = "samples"

    def __init__(self, num_samples: int = 64, seed: int = 0, every_n_epochs: int = 1, per_class: int = 10) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 1 or per_class < 1:
            raise ValueError(f"num_samples and per_class must be >= 1, got {num_samples} and {per_class}")
        self.num_samples, self.seed, self.per_class = num_samples, seed, per_class

    def make_image(self, trainer, pl_module):
        generator = torch.Generator().manual_seed(self.seed)
        if pl_module.condition_classes is not None:
            return image_grid(class_grid(pl_module, self.per_class, generator), nrow=self.per_class)
        return image_grid(pl_module.sample(self.num_samples, generator=generator))


class LatentInterpolation(_ValidationImages):
    """Rows of decoded linear interpolations between the codes of two validation images.

    Each row: first image, ``steps`` decoded points from its code to the other's, second image.
    Needs ``model.encode`` (a code, or a tuple whose first element is one) and ``model.decode``. A
    class-conditional model encodes each image with its label and decodes the whole row with the
    first image's label: the row then morphs the style, not the class.

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
        labels = self.labels()
        labels = None if labels is None else labels[: len(x)]
        code = _point_code(pl_module, x, labels)
        start, end = code[0::2], code[1::2]  # (P, D) each
        t = torch.linspace(0, 1, self.steps, device=code.device).view(1, -1, 1)  # (1, S, 1)
        path = (1 - t) * start[:, None] + t * end[:, None]  # (P, S, D)
        row_labels = None if labels is None else labels[0::2].repeat_interleave(self.steps)
        decoded = pl_module.decode(path.flatten(0, 1), **label_kwargs(pl_module, row_labels))
        decoded = decoded.view(len(start), self.steps, *x.shape[1:])
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
        code = _point_code(pl_module, x, self.labels())
        if code.ndim != 2 or code.shape[1] != 2:
            return None
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        picture = scatter_plot(code, self.labels(), size=self.size, class_names=names)
        return pil_to_tensor(picture).float() / 255
