"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition"): C1 conv 5x5 (6) -> S2 pool -> C3 conv 5x5 (16) -> S4 pool -> F5 120 -> F6 84 -> out.

The paper feeds 32x32 images; MNIST digits are 28x28, so C1 pads by 2 for 28-pixel inputs, which
gives the paper's feature-map sizes (28 -> 14 -> 10 -> 5). The defaults are the modern variant
(ReLU, max pooling); ``activation="tanh", pool="avg"`` is closer to the original.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.nets.layers import ClassifierNet, make_activation

# Activations that commute with max-pooling exactly (non-decreasing, piecewise linear, no parameters).
PIECEWISE_LINEAR_MONOTONE = ("relu", "leaky_relu")


class LeNet5Net(ClassifierNet):
    """LeNet-5 for ``in_channels`` x ``image_size`` x ``image_size`` inputs.

    The arguments have no defaults: :class:`zoo.models.lenet.LeNet5` declares them.

    Args:
        num_classes: size of the output layer.
        in_channels: 1 (grayscale) or 3 (colour).
        image_size: input height/width; 28 pads C1 by 2 so that maps match the paper's 32x32 input.
        activation: activation after every conv and hidden FC layer.
        pool: ``max`` or ``avg`` subsampling.
        dropout: dropout before F5 and F6 (0 in the paper).
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, activation: str, pool: str,
                 dropout: float) -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        if image_size < 28:
            raise ValueError(f"LeNet-5 needs images of at least 28x28 pixels, got image_size={image_size}")
        pool_layer = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        padding = 2 if image_size == 28 else 0

        def conv_block(conv: nn.Conv2d) -> list[nn.Module]:
            # max(relu(x)) == relu(max(x)) exactly, for values and gradients: pooling first gives the
            # same net with the activation on a quarter of the elements. Both layers hold no
            # parameters, so the state dict is the same in either order.
            if pool == "max" and activation in PIECEWISE_LINEAR_MONOTONE:
                return [conv, pool_layer(2), make_activation(activation)]
            return [conv, make_activation(activation), pool_layer(2)]

        self.features = nn.Sequential(
            *conv_block(nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding)),  # C1, S2: (N, 6, 14, 14)
            *conv_block(nn.Conv2d(6, 16, kernel_size=5)),  # C3 (N, 16, 10, 10), S4: (N, 16, 5, 5)
            nn.Flatten(),
        )
        side = ((image_size + 2 * padding - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(16 * side * side, 120),  # F5
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(120, 84),  # F6
            make_activation(activation),
        )
        self.head = nn.Linear(84, num_classes)
        self.num_features = 84
        self.stage_ends = (3, 7)  # C1-S2, then C3-S4 (and the flatten)

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)  # (N, 84): the penultimate layer
