"""Small building blocks shared by the networks."""

from __future__ import annotations

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
