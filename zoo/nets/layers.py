"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

INITS = ("default", "xavier", "kaiming")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def init_weights(module: nn.Module, scheme: str, activation: str) -> None:
    """Re-initialise every Linear/Conv weight of ``module`` with ``scheme``.

    Biases keep PyTorch's uniform initialisation: zero biases would put every unit's transition at
    the origin, which cripples networks on low-dimensional inputs (a 1-D function fit stalls).

    ``xavier`` (Glorot & Bengio 2010) suits tanh/sigmoid, ``kaiming`` (He et al. 2015) suits the
    ReLU family; ``default`` keeps PyTorch's own initialisation.
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {scheme!r}")
    if scheme == "default":
        return
    # calculate_gain knows these names; PReLU/ELU are closest to leaky_relu/relu respectively.
    gain_name = {"prelu": "leaky_relu", "elu": "relu"}.get(activation, activation)
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(gain_name))
            else:
                nonlinearity = gain_name if gain_name in ("relu", "leaky_relu") else "relu"
                nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)


class FeaturesClassifierNet(nn.Module):
    """torchvision's classifier layout: ``features`` -> ``avgpool`` -> flatten -> ``classifier``,
    whose last layer is the head. Subclasses build those three modules and set ``num_features``
    (the width the head reads)."""

    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Sequential
    num_features: int

    @property
    def head(self) -> nn.Linear:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` outputs."""
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)  # (N, C * pooled_size^2)
        return self.classifier[:-1](x)  # (N, num_features): the output of the layer before the head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (N, num_classes)
