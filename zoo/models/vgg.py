"""VGG-11/13/16/19 (with or without batch norm) as a LightningModule, built for fine-tuning.

The layers are in :mod:`zoo.nets.vgg`; pretrained weights in :mod:`zoo.pretrained`, the fine-tuning
strategies in :mod:`zoo.finetune`.
"""

from __future__ import annotations

from zoo.models.supervised import SupervisedModule
from zoo.nets.vgg import MIN_SIZE, VGGNet


class VGG(SupervisedModule):
    """VGG image classifier for (N, C, H, W) inputs in [0, 1].

    For torchvision's ImageNet weights use ``create_model("vgg16", weights="IMAGENET1K_V1", ...)``
    or ``VGG.with_weights(...)`` (see :mod:`zoo.pretrained`).

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: the ``_bn`` variant.
        in_channels: channels of the data (1 or 3); grayscale is repeated to the net's 3 channels.
        image_size: height and width of the data; inputs below the layout's minimum size (32) are
            resized up to it inside the model.
        dropout: dropout after FC6 and FC7.
        width_divisor: divide conv widths by this (1: the paper's VGG; larger: small, fast nets).
        hidden_size: width of FC6 and FC7 (4096 in the paper).
        pooled_size: side of the average pool before FC6 (7 in torchvision's layout).
        resize_to: side the inputs are resized to before the net (None: automatic, see image_size).
        num_classes: outputs of the head (None: 10; with pretrained weights, the weights' own head).
        **kwargs: optimiser, normalisation, fine-tuning (``finetune="top2"`` trains the top 2 of the
            5 conv stages) and ``class_names`` settings of :class:`~zoo.models.supervised.SupervisedModule`.
    """

    head_key = "classifier.6.weight"  # FC8 in torchvision's layout
    tasks = ("multiclass",)

    def __init__(
        self,
        depth: int = 16,
        batch_norm: bool = False,
        in_channels: int = 3,
        image_size: int = 224,
        dropout: float = 0.5,
        width_divisor: int = 1,
        hidden_size: int = 4096,
        pooled_size: int = 7,
        resize_to: int | None = None,
        num_classes: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(num_classes=10 if num_classes is None else num_classes, **kwargs)
        self.take_images(in_channels, image_size)
        self.adapt_inputs(3, image_size, resize_to, MIN_SIZE)
        # The layers from the arguments above, checked there; grayscale is repeated to 3 channels.
        self.build_net(VGGNet, num_classes=self.num_outputs, in_channels=3)

    @classmethod
    def torchvision_arch(cls, hparams: dict) -> str | None:
        return f"vgg{hparams['depth']}" + ("_bn" if hparams["batch_norm"] else "")
