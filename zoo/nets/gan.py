"""Generator and discriminator networks for 28x28 grayscale images: layers only, no training logic.

Three families, picked by ``arch`` in :class:`zoo.models.gan.GAN`:

- ``mlp``: fully connected networks as in the original GAN (Goodfellow et al. 2014, MNIST
  experiments), with batch norm and LeakyReLU in the generator and LeakyReLU instead of maxout in
  the discriminator.
- ``dcgan``: the convolutional design of Radford, Metz & Chintala 2016 (DCGAN) scaled to 28x28:
  strided transposed convolutions with batch norm and ReLU in the generator, strided convolutions
  with LeakyReLU(0.2) in the discriminator, no pooling.
- ``decoder``: the layout of the zoo's fully connected VAE decoder (:mod:`zoo.nets.autoencoder`):
  ReLU layers and a sigmoid output, the class (if any) given as a one-hot vector beside the noise,
  with the ``mlp`` discriminator (or the one ``discriminator_arch`` picks). Its point is the start:
  a trained VAE's decoder (``GAN.with_weights("cvae_mnist")``) already draws the digits' shapes,
  blurred; the adversarial game then only has to sharpen them (as in VAE/GAN of Larsen et al. 2016).

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
A conditional discriminator can also have an auxiliary classifier, a linear head on the same
features that names the digit (AC-GAN, Odena et al. 2017): it learns from real images, and the
generator is then also trained to make fakes it recognises as the class asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from zoo.nets.checks import check_widths
from zoo.nets.mlp import MLPNet

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28
ARCHITECTURES = ("mlp", "dcgan", "decoder")


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


class _Discriminator(nn.Module):
    """What the discriminators share: ``net`` ends in the output Linear; the features h it reads get
    the projection term (conditional) and the auxiliary classifier's class logits (if any)."""

    net: nn.Sequential
    projection: ProjectionHead | None
    classifier: nn.Linear | None

    def _heads(self, width: int, num_classes: int | None, norm, classifier: bool) -> None:
        if classifier and num_classes is None:
            raise ValueError("an auxiliary classifier needs classes: set num_classes")
        self.projection = None if num_classes is None else ProjectionHead(width, num_classes, norm)
        self.classifier = nn.Linear(width, num_classes) if classifier else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.scores(x, labels)[0]  # (N, 1) logits

    def scores(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real-vs-fake logits (N, 1) and the auxiliary classifier's class logits (N, K), or None."""
        h = self.net[:-1](x)
        logits = self.net[-1](h)
        if self.projection is not None:
            logits = logits + self.projection(h, labels)
        return logits, None if self.classifier is None else self.classifier(h)


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
        for index, size in enumerate(check_widths("generator hidden_sizes", hidden_sizes, empty=False)):
            layers.append(nn.Linear(width, size))
            if index > 0:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.LeakyReLU(0.2))
            width = size
        layers += [nn.Linear(width, IMAGE_PIXELS), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.condition(z, labels)).view(-1, *IMAGE_SHAPE)  # (N, 1, 28, 28)


class DecoderGenerator(nn.Module):
    """Noise (and a one-hot class) -> ReLU layers -> 784 sigmoid pixels: a VAE decoder's layout.

    ``net`` is the :class:`zoo.nets.mlp.MLPNet` that :class:`zoo.nets.autoencoder.AutoencoderNet`
    uses as its decoder, with the same parameter names, so a fully connected VAE's decoder loads
    into it unchanged (see :meth:`zoo.models.gan.GAN.with_weights`).

    Args:
        latent_dim: size of the noise vector (the VAE's ``latent_size``).
        hidden_sizes: widths of the hidden layers, input side first (the VAE's reversed ``hidden_sizes``).
        num_classes: classes of a conditional generator (one-hot, beside the noise); None: unconditional.
    """

    def __init__(self, latent_dim: int = 50, hidden_sizes: Sequence[int] = (400, 400),
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        widths = check_widths("generator hidden_sizes", hidden_sizes, empty=False)
        self.net = MLPNet(latent_dim + (num_classes or 0), widths,
                          IMAGE_PIXELS, activation="relu", init="kaiming")

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes is not None:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return torch.sigmoid(self.net(z)).view(-1, *IMAGE_SHAPE)  # (N, 1, 28, 28)


class MLPDiscriminator(_Discriminator):
    """784 pixels -> hidden LeakyReLU layers with dropout -> one logit.

    Args:
        hidden_sizes: widths of the hidden layers.
        dropout: dropout after every hidden layer (Goodfellow et al. 2014 used dropout in D).
        minibatch_std: append the minibatch standard-deviation feature before the output layer.
        spectral_norm: spectral normalisation on every layer.
        num_classes: score (image, class) pairs with a projection head; None: images alone.
        classifier: also classify the image into ``num_classes`` (the auxiliary classifier of AC-GAN).
    """

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), dropout: float = 0.3,
                 minibatch_std: bool = True, spectral_norm: bool = False, num_classes: int | None = None,
                 classifier: bool = False) -> None:
        super().__init__()
        norm = _spectral_norm if spectral_norm else _identity
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in check_widths("discriminator hidden_sizes", hidden_sizes, empty=False):
            layers += [norm(nn.Linear(width, size)), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        if minibatch_std:
            layers.append(MinibatchStd())
            width += 1
        layers.append(norm(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)
        self._heads(width, num_classes, norm, classifier)


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


class DCGANDiscriminator(_Discriminator):
    """(1, 28, 28) -> (c, 14, 14) -> (2c, 7, 7) -> one logit, strided convolutions with LeakyReLU.

    Args:
        channels: width ``c`` of the first feature map.
        minibatch_std: append the minibatch standard-deviation channel before the output layer.
        spectral_norm: spectral normalisation on every layer, in place of the batch norm.
        num_classes: score (image, class) pairs with a projection head; None: images alone.
        classifier: also classify the image into ``num_classes`` (the auxiliary classifier of AC-GAN).
    """

    def __init__(self, channels: int = 64, minibatch_std: bool = True, spectral_norm: bool = False,
                 num_classes: int | None = None, classifier: bool = False) -> None:
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
        self._heads((2 * channels + extra) * 7 * 7, num_classes, norm, classifier)


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
    classifier: bool = False,
    discriminator_arch: str | None = None,
) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of ``arch`` (``mlp``, ``dcgan`` or ``decoder``).

    ``discriminator_arch`` (``mlp`` or ``dcgan``) picks the discriminator; None: ``arch``'s own (the
    ``mlp`` one for ``decoder``)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    if discriminator_arch not in (None, "mlp", "dcgan"):
        raise ValueError(f"discriminator_arch must be mlp, dcgan or None (arch's own), got {discriminator_arch!r}")
    if arch == "dcgan":
        generator = DCGANGenerator(latent_dim, channels, num_classes)
    else:
        generator = (MLPGenerator if arch == "mlp" else DecoderGenerator)(latent_dim, generator_hidden, num_classes)
    if (discriminator_arch or ("dcgan" if arch == "dcgan" else "mlp")) == "dcgan":
        return generator, DCGANDiscriminator(channels, minibatch_std, spectral_norm, num_classes, classifier)
    return generator, MLPDiscriminator(discriminator_hidden, dropout, minibatch_std, spectral_norm, num_classes,
                                       classifier)
