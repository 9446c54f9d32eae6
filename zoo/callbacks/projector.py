"""The embedding projector at the end of fit: what the model makes of a fixed set of validation images.

:class:`EmbeddingProjector` asks the model for one feature vector per image
(:meth:`zoo.models.base.ZooModule.embedding`: a classifier's penultimate features, an autoencoder's
codes) and gives them, with the labels as metadata and the images as a sprite, to TensorBoard's
projector (``SummaryWriter.add_embedding``); to W&B as a table (label, then one column per feature).
A model without such features (a GAN), or a run with neither logger, gets nothing.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from zoo.callbacks.dynamics import drawing_loggers
from zoo.models.base import ZooModule

EMBEDDING_TAG = "validation"


class EmbeddingProjector(Callback):
    """The features of the first ``num_images`` validation images (the same every run: the validation
    split is seeded and not shuffled), logged when fit ends. Rank zero only.

    Args:
        num_images: how many validation images to project.
        batch_size: images per forward pass when the features are computed.
    """

    def __init__(self, num_images: int = 500, batch_size: int = 250) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        self.num_images, self.batch_size = num_images, batch_size
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def wanted(self, trainer, pl_module) -> bool:
        return trainer.is_global_zero and isinstance(pl_module, ZooModule) and any(drawing_loggers(trainer))

    def kept(self) -> int:
        return sum(len(x) for x in self.images)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.kept() < self.num_images:  # a full set is kept; a partial one (a short validation) starts again
            self.images, self.labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or dataloader_idx != 0 or self.kept() >= self.num_images:
            return
        if not self.wanted(trainer, pl_module) or not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return
        room = self.num_images - self.kept()
        self.images.append(batch[0][:room].detach().cpu())
        self.labels.append(batch[1][:room].detach().cpu())

    @torch.no_grad()
    def on_fit_end(self, trainer, pl_module) -> None:
        if not self.images or not self.wanted(trainer, pl_module):
            return
        images, labels = torch.cat(self.images), torch.cat(self.labels)
        was_training = pl_module.training
        pl_module.eval()
        try:
            parts = [pl_module.embedding(x.to(pl_module.device), y.to(pl_module.device))
                     for x, y in zip(images.split(self.batch_size), labels.split(self.batch_size))]
        finally:
            pl_module.train(was_training)
        if any(part is None for part in parts):
            return  # a model without features
        features = torch.cat(parts).float().flatten(1).cpu()  # (N, D)
        tensorboards, wandbs = drawing_loggers(trainer)
        metadata = labels.flatten().tolist() if labels.ndim == 1 else None
        sprite = images if images.ndim == 4 and images.shape[1] in (1, 3) else None  # images only, not sequences
        for logger in tensorboards:
            logger.experiment.add_embedding(features, metadata=metadata, label_img=sprite,
                                            global_step=trainer.global_step, tag=EMBEDDING_TAG)
            logger.experiment.flush()
        for logger in wandbs:
            columns = ["label", *(f"f{i}" for i in range(features.shape[1]))]
            data = [[label, *row] for label, row in zip(labels.flatten().tolist(), features.tolist())]
            logger.log_table(key=f"embedding/{EMBEDDING_TAG}", columns=columns, data=data, step=trainer.global_step)
