"""Generator and discriminator networks for 28x28 grayscale images: layers only, no training logic.

Two families, picked by ``arch`` in :class:`zoo.models.gan.GAN`:

- ``mlp``: fully connected networks as in the original GAN (Goodfellow et al. 2014, MNIST
  experiments), with batch norm and LeakyReLU in the generator and LeakyReLU instead of maxout in
  the discriminator.
- ``dcgan``: the convolutional design of Radford, Metz & Chintala 2016 (DCGAN) scaled to 28x28:
  strided transposed convolutions with batch norm and ReLU in the generator, strided convolutions
  with LeakyReLU(0.2) in the discriminator, no pooling.

Generators map noise (N, latent_dim) to images (N, 1, 28, 28) in [0, 1] (a sigmoid output, since the
zoo's images are in [0, 1]); discriminators map images to one logit per image, (N, 1).

Both discriminators can end with a minibatch standard-deviation feature (Karras et al. 2018,
section 3): the spread of the batch's features, averaged to one number, is appended to every sample's
features. A generator that collapses onto a few digits produces batches with a small spread, which
the discriminator can then see and punish; without it, plain GANs here covered some digits at 1-3%.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


def _check_sizes(name: str, sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(int(s) < 1 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive layer widths, got {sizes}")
    return [int(s) for s in sizes]


class MinibatchStd(nn.Module):
    """Appends the batch's mean feature standard deviation as one extra feature (or channel).

    (N, F) -> (N, F + 1) and (N, C, H, W) -> (N, C + 1, H, W). The statistic is taken over the batch
    each forward pass sees: real and fake images go through the discriminator as separate batches.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()  # scalar
        extra = spread.expand(x.shape[0], 1, *x.shape[2:])  # (N, 1) or (N, 1, H, W)
        return torch.cat([x, extra], dim=1)


class MLPGenerator(nn.Module):
    """Noise -> hidden layers (Linear, batch norm, LeakyReLU(0.2)) -> 784 sigmoid pixels.

    Two departures from the paper's ReLU MLP, both needed here: without batch norm the output
    sigmoids saturate once the discriminator wins the first epoch and every sample collapses onto
    the same few bright pixels; LeakyReLU keeps units from dying in that phase. The first hidden
    layer has no batch norm, as in DCGAN's generator input.
    """

    def __init__(self, latent_dim: int = 100, hidden_sizes: Sequence[int] = (256, 512, 1024)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for index, size in enumerate(_check_sizes("generator hidden_sizes", hidden_sizes)):
            layers.append(nn.Linear(width, size))
            if index > 0:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.LeakyReLU(0.2))
            width = size
        layers += [nn.Linear(width, IMAGE_PIXELS), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *IMAGE_SHAPE)  # (N, 1, 28, 28)


class MLPDiscriminator(nn.Module):
    """784 pixels -> hidden LeakyReLU layers with dropout -> one logit.

    Args:
        hidden_sizes: widths of the hidden layers.
        dropout: dropout after every hidden layer (Goodfellow et al. 2014 used dropout in D).
        minibatch_std: append the minibatch standard-deviation feature before the output layer.
    """

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), dropout: float = 0.3,
                 minibatch_std: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in _check_sizes("discriminator hidden_sizes", hidden_sizes):
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        if minibatch_std:
            layers.append(MinibatchStd())
            width += 1
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, 1) logits


class DCGANGenerator(nn.Module):
    """Noise -> (2c, 7, 7) -> (c, 14, 14) -> (1, 28, 28), transposed convolutions with batch norm.

    Args:
        latent_dim: size of the noise vector.
        channels: width ``c`` of the last hidden feature map (the first has ``2c``).
    """

    def __init__(self, latent_dim: int = 100, channels: int = 64) -> None:
        super().__init__()
        self.project = nn.Sequential(  # the DCGAN "project and reshape" layer
            nn.Linear(latent_dim, 2 * channels * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * channels * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, 7, 7)),  # (N, 2c, 7, 7)
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, bias=False),  # (N, c, 14, 14)
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),  # (N, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z))


class DCGANDiscriminator(nn.Module):
    """(1, 28, 28) -> (c, 14, 14) -> (2c, 7, 7) -> one logit, strided convolutions with LeakyReLU.

    Args:
        channels: width ``c`` of the first feature map.
        minibatch_std: append the minibatch standard-deviation channel before the output layer.
    """

    def __init__(self, channels: int = 64, minibatch_std: bool = True) -> None:
        super().__init__()
        extra = 1 if minibatch_std else 0
        self.net = nn.Sequential(
            # DCGAN: no batch norm on the discriminator's input layer.
            nn.Conv2d(1, channels, 4, stride=2, padding=1),  # (N, c, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1, bias=False),  # (N, 2c, 7, 7)
            nn.BatchNorm2d(2 * channels),
            nn.LeakyReLU(0.2),
            *([MinibatchStd()] if minibatch_std else []),  # (N, 2c + 1, 7, 7)
            nn.Flatten(),
            nn.Linear((2 * channels + extra) * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, 1) logits


def build_gan_nets(
    arch: str,
    latent_dim: int,
    generator_hidden: Sequence[int],
    discriminator_hidden: Sequence[int],
    channels: int,
    dropout: float,
    minibatch_std: bool = True,
) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of ``arch`` (``mlp`` or ``dcgan``)."""
    if arch == "mlp":
        return MLPGenerator(latent_dim, generator_hidden), MLPDiscriminator(discriminator_hidden, dropout, minibatch_std)
    if arch == "dcgan":
        return DCGANGenerator(latent_dim, channels), DCGANDiscriminator(channels, minibatch_std)
    raise ValueError(f"arch must be 'mlp' or 'dcgan', got {arch!r}")
