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

Two options for stable training: ``spectral_norm`` constrains every discriminator layer to a
Lipschitz constant of about 1 (Miyato et al. 2018) and replaces the discriminator's batch norm; and
``num_classes`` makes both networks class-conditional: the generator gets a learned class embedding
concatenated to its noise (Mirza & Osindero 2014), the discriminator scores the pair (image, class)
with a projection head, ``logit = w . h + e_y . h`` for its features ``h`` (Miyato & Koyama 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

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


def _identity(layer: nn.Module) -> nn.Module:
    return layer


class ClassEmbedding(nn.Module):
    """Concatenates a learned embedding of each sample's class to its noise; without classes, passes z on.

    (N, latent_dim) and labels (N,) -> (N, latent_dim + size); ``size`` is latent_dim, or 0 when
    ``num_classes`` is None.
    """

    def __init__(self, num_classes: int | None, latent_dim: int) -> None:
        super().__init__()
        self.embed = None if num_classes is None else nn.Embedding(num_classes, latent_dim)
        self.size = 0 if num_classes is None else latent_dim

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        return torch.cat([z, self.embed(labels)], dim=1)


class ProjectionHead(nn.Module):
    """The class term of a projection discriminator (Miyato & Koyama 2018): ``e_y . h`` per sample.

    Added to the unconditional logit ``w . h + b``: the discriminator learns one direction per class
    in its feature space h (N, F), so a fake of the wrong class scores low.
    """

    def __init__(self, width: int, num_classes: int, norm) -> None:
        super().__init__()
        self.embed = norm(nn.Embedding(num_classes, width))

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.embed(labels) * h).sum(dim=1, keepdim=True)  # (N, 1)


def _score(net: nn.Sequential, projection: ProjectionHead | None, x: torch.Tensor,
           labels: torch.Tensor | None) -> torch.Tensor:
    """Logits (N, 1) of a discriminator ``net`` whose last layer is the output Linear."""
    if projection is None:
        return net(x)
    h = net[:-1](x)
    return net[-1](h) + projection(h, labels)


def _project(in_size: int, channels: int) -> nn.Sequential:
    """The DCGAN "project and reshape" layer: (N, in_size) -> (N, channels, 7, 7), batch norm and ReLU."""
    return nn.Sequential(
        nn.Linear(in_size, channels * 7 * 7, bias=False),
        nn.BatchNorm1d(channels * 7 * 7),
        nn.ReLU(),
        nn.Unflatten(1, (channels, 7, 7)),
    )


class _ConvGenerator(nn.Module):
    """Noise (and labels) -> ``project`` -> ``upsample``: what the two convolutional generators share."""

    condition: ClassEmbedding
    project: nn.Module
    upsample: nn.Module

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.upsample(self.project(self.condition(z, labels)))


class _ConvDiscriminator(nn.Module):
    """Images (and labels) -> ``net`` (ending in the output Linear), plus the projection term if any."""

    net: nn.Sequential
    projection: ProjectionHead | None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return _score(self.net, self.projection, x, labels)  # (N, 1) logits


class MLPGenerator(nn.Module):
    """Noise -> hidden layers (Linear, batch norm, LeakyReLU(0.2)) -> 784 sigmoid pixels.

    Two departures from the paper's ReLU MLP, both needed here: without batch norm the output
    sigmoids saturate once the discriminator wins the first epoch and every sample collapses onto
    the same few bright pixels; LeakyReLU keeps units from dying in that phase. The first hidden
    layer has no batch norm, as in DCGAN's generator input.
    """

    def __init__(self, latent_dim: int = 100, hidden_sizes: Sequence[int] = (256, 512, 1024),
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.condition = ClassEmbedding(num_classes, latent_dim)
        layers: list[nn.Module] = []
        width = latent_dim + self.condition.size
        for index, size in enumerate(_check_sizes("generator hidden_sizes", hidden_sizes)):
            layers.append(nn.Linear(width, size))
            if index > 0:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.LeakyReLU(0.2))
            width = size
        layers += [nn.Linear(width, IMAGE_PIXELS), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.condition(z, labels)).view(-1, *IMAGE_SHAPE)  # (N, 1, 28, 28)


class MLPDiscriminator(nn.Module):
    """784 pixels -> hidden LeakyReLU layers with dropout -> one logit.

    Args:
        hidden_sizes: widths of the hidden layers.
        dropout: dropout after every hidden layer (Goodfellow et al. 2014 used dropout in D).
        minibatch_std: append the minibatch standard-deviation feature before the output layer.
    """

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), dropout: float = 0.3,
                 minibatch_std: bool = True, spectral_norm: bool = False, num_classes: int | None = None) -> None:
        super().__init__()
        norm = _spectral_norm if spectral_norm else _identity
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in _check_sizes("discriminator hidden_sizes", hidden_sizes):
            layers += [norm(nn.Linear(width, size)), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        if minibatch_std:
            layers.append(MinibatchStd())
            width += 1
        layers.append(norm(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)
        self.projection = None if num_classes is None else ProjectionHead(width, num_classes, norm)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return _score(self.net, self.projection, x, labels)  # (N, 1) logits


class DCGANGenerator(_ConvGenerator):
    """Noise -> (2c, 7, 7) -> (c, 14, 14) -> (1, 28, 28), transposed convolutions with batch norm.

    Args:
        latent_dim: size of the noise vector.
        channels: width ``c`` of the last hidden feature map (the first has ``2c``).
    """

    def __init__(self, latent_dim: int = 100, channels: int = 64, num_classes: int | None = None) -> None:
        super().__init__()
        self.condition = ClassEmbedding(num_classes, latent_dim)
        self.project = _project(latent_dim + self.condition.size, 2 * channels)  # (N, 2c, 7, 7)
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, bias=False),  # (N, c, 14, 14)
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),  # (N, 1, 28, 28)
            nn.Sigmoid(),
        )


class DCGANDiscriminator(_ConvDiscriminator):
    """(1, 28, 28) -> (c, 14, 14) -> (2c, 7, 7) -> one logit, strided convolutions with LeakyReLU.

    Args:
        channels: width ``c`` of the first feature map.
        minibatch_std: append the minibatch standard-deviation channel before the output layer.
        spectral_norm: spectral normalisation on every layer, in place of the batch norm.
        num_classes: score (image, class) pairs with a projection head; None: images alone.
    """

    def __init__(self, channels: int = 64, minibatch_std: bool = True, spectral_norm: bool = False,
                 num_classes: int | None = None) -> None:
        super().__init__()
        extra = 1 if minibatch_std else 0
        norm = _spectral_norm if spectral_norm else _identity
        self.net = nn.Sequential(
            # DCGAN: no batch norm on the discriminator's input layer.
            norm(nn.Conv2d(1, channels, 4, stride=2, padding=1)),  # (N, c, 14, 14)
            nn.LeakyReLU(0.2),
            norm(nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1, bias=spectral_norm)),  # (N, 2c, 7, 7)
            nn.Identity() if spectral_norm else nn.BatchNorm2d(2 * channels),
            nn.LeakyReLU(0.2),
            *([MinibatchStd()] if minibatch_std else []),  # (N, 2c + 1, 7, 7)
            nn.Flatten(),
            norm(nn.Linear((2 * channels + extra) * 7 * 7, 1)),
        )
        width = (2 * channels + extra) * 7 * 7
        self.projection = None if num_classes is None else ProjectionHead(width, num_classes, norm)


def build_gan_nets(
    arch: str,
    latent_dim: int,
    generator_hidden: Sequence[int],
    discriminator_hidden: Sequence[int],
    channels: int,
    dropout: float,
    minibatch_std: bool = True,
    spectral_norm: bool = False,
    num_classes: int | None = None,
) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of ``arch`` (``mlp`` or ``dcgan``)."""
    if arch == "mlp":
        return (MLPGenerator(latent_dim, generator_hidden, num_classes),
                MLPDiscriminator(discriminator_hidden, dropout, minibatch_std, spectral_norm, num_classes))
    if arch == "dcgan":
        return (DCGANGenerator(latent_dim, channels, num_classes),
                DCGANDiscriminator(channels, minibatch_std, spectral_norm, num_classes))
    raise ValueError(f"arch must be 'mlp' or 'dcgan', got {arch!r}")
