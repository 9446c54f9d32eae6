"""A 1-D regression problem: samples of a known function, for the universal-approximation demo."""

from __future__ import annotations

import math

import torch

from zoo.data.base import InMemoryDataModule

FUNCTIONS = {
    "sine": lambda x: torch.sin(2 * x),
    "abs": lambda x: x.abs() - 1.5,
    "step": lambda x: torch.sign(x) * 0.5,
    "wave": lambda x: torch.sin(3 * x) * torch.exp(-0.2 * x.square()),
}


class FunctionDataModule(InMemoryDataModule):
    """Samples ``y = f(x) + noise`` for ``x`` uniform in [-pi, pi]; inputs (N, 1), targets (N, 1).

    Args:
        function: sine, abs, step or wave.
        num_train: training samples (the validation split is taken from these).
        num_test: test samples, on an evenly spaced grid.
        noise: standard deviation of Gaussian noise added to training targets.
        **kwargs: batch_size, val_size, seed of :class:`~zoo.data.base.InMemoryDataModule`.
    """

    num_classes = 1
    input_shape = (1,)

    def __init__(
        self,
        function: str = "wave",
        num_train: int = 4096,
        num_test: int = 1000,
        noise: float = 0.0,
        val_size: int = 512,
        **kwargs,
    ) -> None:
        if function not in FUNCTIONS:
            raise ValueError(f"function must be one of {sorted(FUNCTIONS)}, got {function!r}")
        super().__init__(val_size=val_size, **kwargs)

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        f = FUNCTIONS[self.hparams.function]
        if train:
            generator = torch.Generator().manual_seed(self.hparams.seed + 1)
            x = (torch.rand(self.hparams.num_train, 1, generator=generator) * 2 - 1) * math.pi
            y = f(x) + self.hparams.noise * torch.randn(x.shape, generator=generator)
        else:
            x = torch.linspace(-math.pi, math.pi, self.hparams.num_test).unsqueeze(1)
            y = f(x)
        return x, y

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def augmentation(self) -> str | None:
        return None
