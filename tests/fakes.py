"""Tiny synthetic data for smoke tests (real-data tests use the `data_dir` fixture instead)."""

import lightning as L
import torch

from zoo.data.base import InMemoryDataModule


class RandomImages(InMemoryDataModule):
    """Random uint8 images of ``shape`` with labels ``i % num_classes``: 64 train (16 val) and 32 test."""

    def __init__(self, shape=(1, 28, 28), num_classes=10, **kwargs):
        self.input_shape, self.num_classes = tuple(shape), num_classes
        super().__init__(val_size=16, batch_size=16, **kwargs)

    def load_split(self, train):
        generator = torch.Generator().manual_seed(int(train))
        n = 64 if train else 32
        x = torch.randint(0, 256, (n, *self.input_shape), dtype=torch.uint8, generator=generator)
        return x, torch.arange(n) % self.num_classes


def quiet_trainer(tmp_path, **kwargs) -> L.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or summary."""
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, **kwargs)
