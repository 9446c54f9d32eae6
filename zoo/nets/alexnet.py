"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks"): five conv layers (three followed by max pooling), then three FC layers with dropout.

The layout is torchvision's ``alexnet`` (the single-GPU "one weird trick" version of Krizhevsky 2014,
without local response normalisation): the same ``features.*``/``classifier.*`` state-dict keys and
shapes, so torchvision's ImageNet weights load by name. ``small=True`` keeps the same layers and
keys with 3x3 kernels, 2x2 pooling and narrower widths for 28-32 pixel images (Fashion-MNIST, CIFAR).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from zoo.nets.layers import FeaturesClassifierNet


@dataclass(frozen=True)
class AlexNetConfig:
    # (out_channels, kernel, stride, padding, max-pool after) for conv1..conv5
    convs: tuple[tuple[int, int, int, int, bool], ...]
    pool_kernel: int
    pool_stride: int
    pooled_size: int  # side of the adaptive average pool before the classifier
    hidden: int  # default width of FC6 and FC7
    min_size: int  # smallest input side the layers accept


IMAGENET = AlexNetConfig(
    # 224 -> conv1 55 -> pool 27 -> conv2 27 -> pool 13 -> conv3-5 13 -> pool 6
    convs=((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False), (256, 3, 1, 1, True)),
    pool_kernel=3, pool_stride=2, pooled_size=6, hidden=4096,
    min_size=63,  # torchvision's AlexNet_Weights meta["min_size"]
)
SMALL = AlexNetConfig(
    # 28 -> pool 14 -> pool 7 -> conv3-5 7 -> pool 3; about 14 M multiply-adds per 28x28 image
    convs=((32, 3, 1, 1, True), (64, 3, 1, 1, True), (96, 3, 1, 1, False), (96, 3, 1, 1, False), (64, 3, 1, 1, True)),
    pool_kernel=2, pool_stride=2, pooled_size=3, hidden=512,
    min_size=8,
)


class AlexNetNet(FeaturesClassifierNet):
    """AlexNet with torchvision's parameter layout.

    The arguments have no defaults: :class:`zoo.models.alexnet.AlexNet` declares them.

    Args:
        num_classes: size of the output layer (1000 for ImageNet weights).
        in_channels: input channels (3 for ImageNet weights).
        small: the 28-32 pixel variant (see module docstring).
        dropout: dropout before FC6 and FC7 (0.5 in the paper).
        hidden_size: width of FC6 and FC7; None: 4096 (the paper's), 512 for ``small``.
    """

    def __init__(self, num_classes: int, in_channels: int, small: bool, dropout: float, hidden_size: int | None) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if hidden_size is not None and hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        cfg = SMALL if small else IMAGENET
        hidden = hidden_size or cfg.hidden
        self.min_size = cfg.min_size
        layers: list[nn.Module] = []
        stage_ends = []
        channels = in_channels
        for out_channels, kernel, stride, padding, pool in cfg.convs:
            layers += [nn.Conv2d(channels, out_channels, kernel, stride, padding), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(cfg.pool_kernel, cfg.pool_stride))
                stage_ends.append(len(layers))  # a pooling layer ends a stage: conv1, conv2, conv3-5
            channels = out_channels
        self.features = nn.Sequential(*layers)  # ImageNet: (N, 256, 6, 6) for 224x224 inputs
        self.stage_ends = tuple(stage_ends)
        self.avgpool = nn.AdaptiveAvgPool2d(cfg.pooled_size)  # any input size -> fixed classifier input
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(channels * cfg.pooled_size**2, hidden),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),  # FC7
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),  # FC8, the head
        )
        self.num_features = hidden
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                # He et al. 2015: without batch norm, PyTorch's default (a smaller gain) slows the start
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
