"""AlexNet as a LightningModule; the layers are in :mod:`zoo.nets.alexnet`."""

from __future__ import annotations

from zoo.models.supervised import SupervisedModule
from zoo.nets.alexnet import IMAGENET, SMALL, AlexNetNet


class AlexNet(SupervisedModule):
    """AlexNet image classifier for (N, C, H, W) inputs in [0, 1].

    For torchvision's ImageNet weights use ``create_model("alexnet", weights="IMAGENET1K_V1", ...)``
    or ``AlexNet.with_weights(...)`` (see :mod:`zoo.pretrained`).

    Args:
        small: the 28-32 pixel variant (3x3 kernels, narrower); False is torchvision's layout.
        in_channels: channels of the data (1 or 3). The ImageNet layout always has 3 input
            channels; grayscale inputs are repeated to 3.
        image_size: height and width of the data. Inputs below the layout's minimum size (63, as
            torchvision's weights say) are resized up to it inside the model.
        dropout: dropout before FC6 and FC7.
        hidden_size: width of FC6 and FC7; None: 4096 (the paper's), 512 for ``small``.
        resize_to: side the inputs are resized to before the net (None: automatic, see image_size).
        num_classes: outputs of the head (None: 10; with pretrained weights, the weights' own head).
        **kwargs: optimiser, normalisation, fine-tuning and ``class_names`` settings of
            :class:`~zoo.models.supervised.SupervisedModule`.
    """

    head_key = "classifier.6.weight"  # FC8 in torchvision's layout
    tasks = ("multiclass",)

    def __init__(
        self,
        small: bool = False,
        in_channels: int = 3,
        image_size: int = 224,
        dropout: float = 0.5,
        hidden_size: int | None = None,
        resize_to: int | None = None,
        num_classes: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(num_classes=10 if num_classes is None else num_classes, **kwargs)
        self.take_images(in_channels, image_size)
        net_channels = in_channels if small else 3
        self.adapt_inputs(net_channels, image_size, resize_to, (SMALL if small else IMAGENET).min_size)
        self.build_net(AlexNetNet, num_classes=self.num_outputs, in_channels=net_channels)  # checked there

    @classmethod
    def torchvision_arch(cls, hparams: dict) -> str | None:
        return None if hparams.get("small") else "alexnet"
