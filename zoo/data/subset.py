"""A label budget: a registered in-memory dataset with only a few labelled training images.

Transfer learning pays off when labels are scarce; this DataModule makes that setting reproducible
(e.g. Fashion-MNIST with 1,000 training labels) while the test split stays complete.
"""

from __future__ import annotations

import torch

from zoo.data.base import InMemoryDataModule


class LabelBudgetDataModule(InMemoryDataModule):
    """``train_size`` + ``val_size`` labelled images drawn class-balanced from a dataset's training split.

    Args:
        dataset: registered name of an in-memory DataModule (``fashion_mnist``, ``mnist`` ...).
        train_size: labelled training images.
        val_size: labelled validation images, disjoint from the training ones.
        **kwargs: ``data_dir``, ``batch_size``, ``seed`` (of the draw), ``shift``, ``hflip``,
            ``num_workers``, ``download`` of :class:`~zoo.data.base.InMemoryDataModule`.
    """

    def __init__(self, dataset: str = "fashion_mnist", train_size: int = 1000, val_size: int = 1000, **kwargs) -> None:
        from zoo.registry import create_datamodule

        if train_size < 1:
            raise ValueError(f"train_size must be >= 1, got {train_size}")
        super().__init__(val_size=val_size, **kwargs)
        self.source = create_datamodule(dataset, **{k: v for k, v in kwargs.items() if k in ("data_dir", "download")})
        if not isinstance(self.source, InMemoryDataModule):
            raise ValueError(f"dataset {dataset!r} is not an in-memory DataModule")
        for attribute in ("num_classes", "input_shape", "mean", "std", "class_names", "framing"):
            setattr(self, attribute, getattr(self.source, attribute))

    def prepare_data(self) -> None:
        self.source.prepare_data()

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.source.load_split(train)
        if not train:
            return x, y
        # A class-balanced pool of val_size + train_size images; setup() then holds out val_size of it.
        generator = torch.Generator().manual_seed(self.hparams.seed)
        per_class = (self.hparams.val_size + self.hparams.train_size) // self.num_classes
        chosen = []
        for label in range(self.num_classes):
            index = (y == label).nonzero().squeeze(1)
            if per_class > len(index):
                raise ValueError(f"class {label} has only {len(index)} images, fewer than the {per_class} asked for")
            chosen.append(index[torch.randperm(len(index), generator=generator)[:per_class]])
        chosen = torch.cat(chosen)
        return x[chosen], y[chosen]
