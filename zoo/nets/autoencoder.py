"""Encoder/decoder pairs for 28x28 images: fully connected (MLP) and convolutional.

Both map images (N, C, 28, 28) to codes (N, code_size) and codes back to *pre-activation* images
(N, C, 28, 28): the model decides the output non-linearity (sigmoid for pixel probabilities, none
for the linear autoencoder), so that losses can use the numerically stable logit forms.

A conditional model (``condition_size`` > 0, e.g. a class-conditional VAE) passes a condition vector
``c`` (N, condition_size), such as a one-hot class, to both halves: the MLP encoder reads it beside
the pixels, the convolutional one beside its features, and the decoder reads it beside the code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from zoo.nets.checks import check_widths
from zoo.nets.layers import init_weights, make_activation
from zoo.nets.mlp import MLPNet

IMAGE_SIZE = 28
ARCHITECTURES = ("mlp", "conv")


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions halve the image twice (28 -> 14 -> 7), then a linear layer gives the code.

    Args:
        in_channels: image channels.
        channels: output channels of the two convolutions.
        code_size: size of the code.
        activation: activation after each convolution.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], code_size: int, activation: str,
                 condition_size: int = 0) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1),  # (N, c1, 14, 14)
            make_activation(activation),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),  # (N, c2, 7, 7)
            make_activation(activation),
            nn.Flatten(),  # (N, c2 * 49)
        )
        self.head = nn.Linear(c2 * 7 * 7 + condition_size, code_size)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_joined(self.features(x), c))  # (N, code_size)


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: linear to (c2, 7, 7), then two transposed convolutions to 28x28."""

    def __init__(self, out_channels: int, channels: Sequence[int], code_size: int, activation: str,
                 condition_size: int = 0) -> None:
        super().__init__()
        c1, c2 = channels
        self.c2 = c2
        self.fc = nn.Sequential(nn.Linear(code_size + condition_size, c2 * 7 * 7), make_activation(activation))
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),  # (N, c1, 14, 14)
            make_activation(activation),
            nn.ConvTranspose2d(c1, out_channels, 4, stride=2, padding=1),  # (N, C, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, self.c2, 7, 7))


def _joined(features: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """``features`` (N, ...) flattened, with the condition ``c`` (N, K) appended when there is one."""
    flat = features.flatten(1)
    return flat if c is None else torch.cat([flat, c.to(flat.dtype)], dim=1)


class AutoencoderNet(nn.Module):
    """An encoder and a decoder for (C, 28, 28) images.

    Args:
        architecture: ``mlp`` (fully connected) or ``conv`` (convolutional).
        code_size: size of the code (the bottleneck).
        out_code_size: size of the encoder output; e.g. ``2 * code_size`` for a VAE's (mu, logvar).
            None: ``code_size``.
        in_channels: image channels.
        hidden_sizes: MLP hidden widths of the encoder (the decoder mirrors them); ``[]`` with
            ``architecture="mlp"`` gives a linear encoder and decoder.
        channels: the two convolution widths of the conv architecture.
        activation: hidden activation (see :func:`zoo.nets.layers.make_activation`).
        init: weight initialisation, ``default``, ``xavier`` or ``kaiming``.
        condition_size: size of the condition vector both halves read; 0: unconditional.
    """

    def __init__(
        self,
        architecture: str = "mlp",
        code_size: int = 32,
        out_code_size: int | None = None,
        in_channels: int = 1,
        hidden_sizes: Sequence[int] = (512, 256),
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
        init: str = "kaiming",
        condition_size: int = 0,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}")
        hidden_sizes, channels = check_widths("hidden_sizes", hidden_sizes), check_widths("channels", channels, count=2)
        self.image_shape = (in_channels, IMAGE_SIZE, IMAGE_SIZE)
        out_code_size = out_code_size or code_size
        self.architecture, self.condition_size = architecture, condition_size
        if architecture == "mlp":
            pixels = math.prod(self.image_shape)
            self.encoder = MLPNet(pixels + condition_size, hidden_sizes, out_code_size, activation=activation)
            self.decoder = MLPNet(code_size + condition_size, list(reversed(hidden_sizes)), pixels,
                                  activation=activation)
        else:
            self.encoder = ConvEncoder(in_channels, channels, out_code_size, activation, condition_size)
            self.decoder = ConvDecoder(in_channels, channels, code_size, activation, condition_size)
        init_weights(self, init, activation)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's output (N, out_code_size) for images ``x`` (and the condition ``c``)."""
        if self.architecture == "conv":
            return self.encoder(x, c)
        return self.encoder(_joined(x, c))  # (N, out_code_size)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activation images (N, C, 28, 28) for codes ``z`` (and the condition ``c``)."""
        return self.decoder(_joined(z, c)).view(-1, *self.image_shape)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, c), c)
