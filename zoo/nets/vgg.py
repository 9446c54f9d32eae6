"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition"): stacks of 3x3 convolutions in five stages separated by 2x2 max pooling, then three
FC layers. Configurations A, B, D and E of the paper's Table 1 are VGG-11, -13, -16 and -19; the
batch-norm variants (Ioffe & Szegedy 2015) add BatchNorm after every convolution.

One cfg table, one ``make_layers``, torchvision's parameter layout (``features.*``,
``classifier.{0,3,6}``), so torchvision's ImageNet weights load by name.
"""

from __future__ import annotations

from torch import nn

from zoo.nets.layers import FeaturesClassifierNet

# Output channels of each 3x3 conv; "M" is a 2x2 max pool ending a stage.
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
MIN_SIZE = 32  # five 2x2 pools: 32 -> 1 (torchvision's VGG weights meta["min_size"])


def make_layers(depth: int, batch_norm: bool, in_channels: int = 3, width_divisor: int = 1
                ) -> tuple[nn.Sequential, tuple[int, ...]]:
    """The conv stages of VGG-``depth``: conv 3x3 -> [BatchNorm] -> ReLU, and max pooling per ``CFGS``.

    Returns the layers and the index after the last layer of each stage (each max pool).
    """
    if depth not in CFGS:
        raise ValueError(f"depth must be one of {sorted(CFGS)}, got {depth}")
    layers: list[nn.Module] = []
    stage_ends = []
    channels = in_channels
    for item in CFGS[depth]:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            stage_ends.append(len(layers))
            continue
        out_channels = int(item) // width_divisor
        layers.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        channels = out_channels
    return nn.Sequential(*layers), tuple(stage_ends)


class VGGNet(FeaturesClassifierNet):
    """VGG with torchvision's parameter layout.

    The arguments have no defaults: :class:`zoo.models.vgg.VGG` declares them.

    Args:
        depth: 11, 13, 16 or 19 weight layers.
        batch_norm: BatchNorm after every convolution.
        num_classes: size of the output layer (1000 for ImageNet weights).
        in_channels: input channels (3 for ImageNet weights).
        dropout: dropout after FC6 and FC7 (0.5 in the paper).
        width_divisor: divide every conv width by this (1 for the paper's widths; >1 for tiny test nets).
        hidden_size: width of FC6 and FC7 (4096 in the paper).
        pooled_size: side of the adaptive average pool before FC6 (7: 224x224 ImageNet maps).
    """

    def __init__(self, depth: int, batch_norm: bool, num_classes: int, in_channels: int, dropout: float,
                 width_divisor: int, hidden_size: int, pooled_size: int) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for name, value in (("width_divisor", width_divisor), ("hidden_size", hidden_size), ("pooled_size", pooled_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.features, self.stage_ends = make_layers(depth, batch_norm, in_channels, width_divisor)  # (N, 512, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d(pooled_size)  # (N, 512, 7, 7) whatever the input size
        channels = 512 // width_divisor
        self.classifier = nn.Sequential(
            nn.Linear(channels * pooled_size**2, hidden_size),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),  # FC7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),  # FC8, the head
        )
        self.num_features = hidden_size
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation (He et al. 2015 for convs), so from-scratch runs match theirs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
