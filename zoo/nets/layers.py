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

INITS = ("default", "xavier", "kaiming", "small")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def init_weights(module: nn.Module, scheme: str, activation: str) -> None:
    """Re-initialise every Linear/Conv weight of ``module`` with ``scheme``.

    Biases keep PyTorch's uniform initialisation: zero biases would put every unit's transition at
    the origin, which cripples networks on low-dimensional inputs (a 1-D function fit stalls).

    ``xavier`` (Glorot & Bengio 2010) suits tanh/sigmoid, ``kaiming`` (He et al. 2015) suits the
    ReLU family; ``default`` keeps PyTorch's own initialisation; ``small`` draws weights from
    N(0, 0.01^2) whatever the width, biases zero, the classic mistake whose signal fades layer by layer.
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {scheme!r}")
    if scheme == "default":
        return
    # calculate_gain knows these names; PReLU/ELU are closest to leaky_relu/relu respectively.
    gain_name = {"prelu": "leaky_relu", "elu": "relu"}.get(activation, activation)
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if scheme == "small":
                nn.init.normal_(layer.weight, std=0.01)
                if layer.bias is not None:  # as in the classic demonstration: nothing else carries the signal
                    nn.init.zeros_(layer.bias)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(gain_name))
            else:
                nonlinearity = gain_name if gain_name in ("relu", "leaky_relu") else "relu"
                nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)


class InputAdapter(nn.Module):
    """Fit images to a net: repeat grayscale to ``channels``, resize to ``size`` x ``size`` (None: keep).

    It holds no parameters or buffers, so it adds nothing to a state dict.
    """

    def __init__(self, channels: int, size: int | None) -> None:
        super().__init__()
        self.channels, self.size = channels, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)  # (N, 1, H, W) -> (N, 3, H, W)
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                          antialias=x.shape[-1] > self.size)
        return x


class ClassifierNet(nn.Module):
    """The interface every zoo classifier net has, after timm's: the features, the head, the backbone.

    - ``forward_features(x)``: the penultimate representation, (N, ``num_features``).
    - ``forward_head(features)``: the outputs from those features; ``forward(x)`` is both.
    - ``get_classifier()``: the head, an ``nn.Linear``; ``reset_classifier(n)`` replaces it with a
      fresh one of ``n`` outputs.
    - ``backbone_stages()``: the modules of the backbone, input side first, as fine-tuning freezes
      and unfreezes them (:mod:`zoo.finetune`); everything else is the classifier.
    - ``forward_stages(x, k)``: the output of the lowest ``k`` stages; ``forward_features_after(h, k)``
      the penultimate representation from that output, so that the two make ``forward_features``.
      Stages frozen for a whole fit are computed once per image that way (:mod:`zoo.callbacks.frozen`).

    Subclasses build their layers, set ``num_features`` and ``head`` (or override the head
    methods) and say where their stages are: ``features`` cut at ``stage_ends``, or their own
    ``backbone_stages`` (and then their own ``forward_stages`` and ``forward_features_after``, or none:
    the sequence nets, whose inputs vary in length, have no such cache). What follows ``features``
    before the head is ``neck`` (nothing by default).
    """

    num_features: int
    features: nn.Sequential
    stage_ends: tuple[int, ...] = ()  # ``features[stage_ends[i - 1]:stage_ends[i]]`` is stage i

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features_after(x, 0)  # (N, num_features)

    def forward_stages(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        """The output of the lowest ``stages`` backbone stages for the net's input ``x`` (0: ``x`` itself)."""
        return self.features[: self.stage_ends[stages - 1]](x) if stages else x

    def forward_features_after(self, h: torch.Tensor, stages: int) -> torch.Tensor:
        """The penultimate representation from ``h``, the output of the lowest ``stages`` backbone stages."""
        rest = self.features if stages == 0 else self.features[self.stage_ends[stages - 1]:]
        return self.neck(rest(h))  # (N, num_features)

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        """What follows ``features`` before the head (nothing by default)."""
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.get_classifier()(features)  # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` outputs."""
        self.head = nn.Linear(self.num_features, num_classes)

    def backbone_stages(self) -> list[nn.Module]:
        starts = (0, *self.stage_ends[:-1])
        return [self.features[start:end] for start, end in zip(starts, self.stage_ends)]


class FeaturesClassifierNet(ClassifierNet):
    """torchvision's classifier layout: ``features`` -> ``avgpool`` -> flatten -> ``classifier``,
    whose last layer is the head. Subclasses build those three modules, set ``num_features`` (the
    width the head reads) and ``stage_ends`` (where the conv stages end in ``features``)."""

    avgpool: nn.Module
    classifier: nn.Sequential

    @property
    def head(self) -> nn.Linear:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, C * pooled_size^2)
        return self.classifier[:-1](x)  # (N, num_features): the output of the layer before the head
