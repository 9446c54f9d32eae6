"""Frozen features computed once: a fit whose lowest backbone stages stay frozen computes their output
for every training image when it starts, and trains the rest of the net from those outputs.

With ``finetune: feature_extractor`` (or the frozen stages of ``top<k>``) most of a training step is the
frozen backbone's forward pass, which gives the same output for an image every epoch when nothing
augments it. :class:`FrozenFeatures` asks the model for that frozen front (``ZooModule.frozen_front``),
runs it once over the training split of one of the zoo's in-memory DataModules, puts the outputs in
the split's place of its images (until fit ends), and tells the model to train from them (``ZooModule.use_frozen_outputs``).
The training order, the batches and the head's initialisation stay what they were, so the run computes
what an uncached run computes, up to floating-point rounding (convolutions of a different batch).

Validation batches stay images (the callbacks that draw or probe them need images); the model keeps
their frozen outputs per batch in the first validation round and uses them afterwards.

The cache is never part of a checkpoint or of saved weights: a resumed run computes it again.
Training goes from the images, with a note in the run's output, when:

- the DataModule augments the training images (``hflip``, ``shift``): each epoch's images differ;
- the DataModule is not one of the zoo's in-memory DataModules (its batches cannot be swapped), or its
  images are read from disk (an image folder over its memory budget: the outputs would not be);
- the run is distributed (DDP): each epoch deals each process a different share of the training
  images, so each process would need the outputs of all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from zoo.data.base import TensorBatchDataset, TensorDataModule
from zoo.data.decoded import DecodedImages
from zoo.models.base import ZooModule


class FrozenFeatures(Callback):
    """Compute the frozen stages' outputs once per training image when fit starts, and train from them.

    ``zoo fit --cache_features false`` (or ``default_callbacks(cache_features=False)``) leaves it out.
    After fit, :attr:`cached` says how many training images were cached (0: none).
    """

    def __init__(self) -> None:
        self.cached = 0
        self._images: tuple[TensorBatchDataset, torch.Tensor] | None = None  # the training split and its images

    def on_fit_start(self, trainer, pl_module) -> None:
        self.cached = 0
        front = pl_module.frozen_front() if isinstance(pl_module, ZooModule) else None
        if front is None:
            return
        datamodule = trainer.datamodule
        reason = refusal(trainer, datamodule)
        if reason is not None:
            rank_zero_info(f"Frozen features: not cached, {reason}; training goes from the images.")
            return
        train = datamodule.datasets["train"]
        started = time.perf_counter()
        outputs = frozen_outputs(trainer, pl_module, front, train, datamodule.batch_size)
        # In place: the training loader may exist already (a learning-rate schedule counts its batches
        # before fit starts), and it reads this dataset, in the same order.
        self._images = (train, train.x)
        train.x = outputs
        pl_module.use_frozen_outputs(True)
        self.cached = len(train)
        size = outputs.element_size() * outputs.numel() / 2**20
        rank_zero_info(f"Frozen features: the frozen layers' outputs for the {len(train)} training images computed "
                       f"once in {time.perf_counter() - started:.1f} s ({size:.0f} MB in memory); validation keeps "
                       "its own in its first round. --cache_features false trains from the images.")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore(trainer, pl_module)

    def _restore(self, trainer, pl_module) -> None:
        """The training images back in the DataModule, and the model back to taking inputs."""
        if self._images is not None:
            train, images = self._images
            train.x = images
            self._images = None
            pl_module.use_frozen_outputs(False)


def refusal(trainer, datamodule) -> str | None:
    """Why this fit's training batches cannot be swapped for frozen outputs, in words (None: they can)."""
    if trainer.world_size > 1:
        return ("the run is distributed: each epoch deals every process a different share of the training images, "
                "so each would need the outputs of all of them")
    if not isinstance(datamodule, TensorDataModule) or "train" not in datamodule.datasets:
        return "the training data does not come from one of the zoo's in-memory DataModules"
    if isinstance(datamodule.datasets["train"].x, DecodedImages):
        return ("the training images are read from disk (the image folder is over its memory budget), and their "
                "frozen outputs would have to be held in memory")
    if datamodule.augmentation:
        return (f"the training images are augmented ({datamodule.augmentation}), so the frozen layers see "
                "different images every epoch")
    return None


@torch.no_grad()
def frozen_outputs(trainer, pl_module, front: Callable[[torch.Tensor], torch.Tensor], images: TensorBatchDataset,
                   batch_size: int) -> torch.Tensor:
    """``front`` of every image of ``images``, in order, batch by batch on the model's device, kept where
    the images are. The model is in eval mode meanwhile (frozen stages compute the same in both modes:
    see ``FineTuning.cacheable_stages``), under the trainer's precision."""
    modes = {module: module.training for module in pl_module.modules()}
    pl_module.eval()
    parts = []
    try:
        with _progress(trainer, len(images)) as advance, trainer.precision_plugin.forward_context():
            for start in range(0, len(images), batch_size):
                x, _ = images[start:start + batch_size]
                parts.append(front(x.to(pl_module.device)).to(images.x.device))
                advance(len(x))
    finally:
        for module, training in modes.items():
            module.training = training
    return torch.cat(parts)  # (N, ...): one output per training image


class _progress:
    """A rich progress bar over ``total`` images on stderr while the cache is computed (when the trainer
    shows progress); yields ``advance(n)``."""

    def __init__(self, trainer, total: int) -> None:
        self.enabled = trainer.progress_bar_callback is not None and trainer.is_global_zero
        self.total, self.bar = total, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("frozen features", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
