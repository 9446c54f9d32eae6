"""Multi-layer perceptron: Linear -> [BatchNorm] -> activation -> [Dropout], repeated."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from zoo.nets.checks import check_widths
from zoo.nets.layers import ClassifierNet, init_weights, make_activation


class MLPNet(ClassifierNet):
    """A fully connected network on flattened inputs.

    Args:
        in_features: size of the flattened input.
        hidden_sizes: width of each hidden layer; ``[]`` gives a linear model.
        out_features: size of the output (classes, 1 for binary/regression).
        activation: one of relu, leaky_relu, prelu, elu, tanh, sigmoid.
        dropout: dropout probability after each hidden activation.
        batch_norm: add BatchNorm1d before each hidden activation.
        init: weight initialisation, ``default``, ``xavier``, ``kaiming`` or ``small``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
    ) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        stage_ends = []
        width = in_features
        for hidden in check_widths("hidden_sizes", hidden_sizes):
            # A bias before BatchNorm is redundant: BN subtracts the mean anyway.
            layers.append(nn.Linear(width, hidden, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            stage_ends.append(len(layers))  # each hidden layer is one backbone stage
            width = hidden
        self.features = nn.Sequential(*layers)  # (N, num_features)
        self.stage_ends = tuple(stage_ends)
        self.head = nn.Linear(width, out_features)
        self.num_features = width
        init_weights(self, init, activation)
