"""The multi-layer perceptron as a LightningModule: classifier, binary classifier or regressor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from zoo.models.supervised import SupervisedModule
from zoo.nets.layers import ACTIVATIONS
from zoo.nets.mlp import MLPNet

ACTIVATION_TYPES = tuple(ACTIVATIONS.values())


class MLP(SupervisedModule):
    """A configurable MLP on inputs of any fixed shape (images are flattened).

    Args:
        input_shape: shape of one sample, e.g. ``[1, 28, 28]`` for MNIST or ``[1]`` for a 1-D function.
        hidden_sizes: width of each hidden layer. One wide layer is enough to approximate any
            continuous function on a compact set (Cybenko 1989; Hornik 1991).
        activation: relu, leaky_relu, prelu, elu, tanh or sigmoid.
        dropout: dropout after every hidden activation.
        batch_norm: BatchNorm1d before every hidden activation.
        init: ``default``, ``xavier``, ``kaiming`` or ``small`` (N(0, 0.01^2), for the initialisation demo).
        **kwargs: task, loss, optimiser, normalisation and fine-tuning settings of
            :class:`~zoo.models.supervised.SupervisedModule`.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        hidden_sizes: Sequence[int] = (512, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "kaiming",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) == 3:  # (C, H, W): an image, so values must be in [0, 1]
            self.input_range = (0.0, 1.0)
        # The layers from the arguments above, checked there.
        self.build_net(MLPNet, in_features=math.prod(self.input_shape), out_features=self.num_outputs)

    @torch.no_grad()
    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every hidden layer's activation for ``x``, input side first, each (N, width)."""
        self.validate_input(x)
        h, outputs = self.normalize(x), []
        for layer in self.net.features:
            h = layer(h)
            if isinstance(layer, ACTIVATION_TYPES):
                outputs.append(h)
        return outputs
