"""VGG-11/13/16/19 (with or without batch norm) as a LightningModule, built for fine-tuning.

The layers are in :mod:`zoo.nets.vgg`; weights loading, input adaptation and the fine-tuning
strategies in :mod:`zoo.finetune`.
"""

from __future__ import annotations

from zoo.finetune import FineTuneMixin, head_settings, prepare_pretrained
from zoo.models.supervised import SupervisedModule
from zoo.nets.vgg import CFGS, MIN_SIZE, VGGNet


class VGG(FineTuneMixin, SupervisedModule):
    """VGG image classifier for (N, C, H, W) inputs in [0, 1].

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: the ``_bn`` variant.
        in_channels: channels of the data (1 or 3); grayscale is repeated to the net's 3 channels.
        image_size: height and width of the data; inputs below the weights' minimum size (32) are
            resized up to it inside the model.
        dropout: dropout after FC6 and FC7.
        width_divisor: divide conv widths by this (1: the paper's VGG; larger: small, fast nets).
        hidden_size: width of FC6 and FC7 (4096 in the paper).
        pooled_size: side of the average pool before FC6 (7 in torchvision's layout).
        weights: pretrained weights: ``"DEFAULT"``/``"IMAGENET1K_V1"`` (torchvision's), a
            ``.safetensors``/``.pth`` file, or zoo weights (shipped name or ``save_pretrained``
            folder). Loaded once here; the saved hyperparameters record ``None`` because
            checkpoints carry the weights themselves.
        resize_to: side the inputs are resized to before the net (None: automatic, see image_size).
        finetune: ``full``, ``feature_extractor``, ``top<k>`` (k of the 5 stages) or ``gradual``.
        backbone_lr_scale: learning rate of the conv stages relative to ``lr``.
        unfreeze_every: epochs between unfreezing steps (``finetune="gradual"``).
        num_classes: outputs of the head. None: the head of ``weights`` is kept with its class
            names (ImageNet's 1,000 for torchvision's weights); 10 without weights. Another
            number replaces the pretrained head with a fresh one.
        class_names: what each output means, in order (None: the weights', when their head is kept).
        **kwargs: optimiser and normalisation settings of
            :class:`~zoo.models.supervised.SupervisedModule`. With ``weights`` and no mean/std,
            the weights' own normalisation (ImageNet's) is applied.
    """

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
        weights: str | None = None,
        resize_to: int | None = None,
        finetune: str = "full",
        backbone_lr_scale: float = 1.0,
        unfreeze_every: int = 1,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        **kwargs,
    ) -> None:
        if depth not in CFGS:
            raise ValueError(f"depth must be one of {sorted(CFGS)}, got {depth}")
        arch = f"vgg{depth}" + ("_bn" if batch_norm else "")
        source, resize_to = prepare_pretrained(arch, weights, in_channels, MIN_SIZE, image_size, resize_to, kwargs)
        num_classes, class_names = head_settings(source, num_classes, class_names)
        weights = None  # noqa: F841 - recorded as None by save_hyperparameters (see Args)
        super().__init__(num_classes=num_classes, class_names=class_names, **kwargs)
        self.input_shape = (in_channels, image_size, image_size)
        self.net = VGGNet(depth, batch_norm, self.hparams.num_classes, 3, dropout, width_divisor, hidden_size, pooled_size)
        self.setup_finetuning(finetune, backbone_lr_scale, unfreeze_every, 3, resize_to, source)
