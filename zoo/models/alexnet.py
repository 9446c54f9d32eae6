"""AlexNet as a LightningModule; the layers are in :mod:`zoo.nets.alexnet`, fine-tuning in :mod:`zoo.finetune`."""

from __future__ import annotations

from zoo.finetune import FineTuneMixin, head_settings, prepare_pretrained
from zoo.models.supervised import SupervisedModule
from zoo.nets.alexnet import IMAGENET, SMALL, AlexNetNet


class AlexNet(FineTuneMixin, SupervisedModule):
    """AlexNet image classifier for (N, C, H, W) inputs in [0, 1].

    Args:
        small: the 28-32 pixel variant (3x3 kernels, narrower); False is torchvision's layout.
        in_channels: channels of the data (1 or 3). The ImageNet layout always has 3 input
            channels; grayscale inputs are repeated to 3.
        image_size: height and width of the data. Inputs below the weights' minimum size (63 for
            ImageNet AlexNet) are resized up to it inside the model.
        dropout: dropout before FC6 and FC7.
        hidden_size: width of FC6 and FC7; None: 4096 (the paper's), 512 for ``small``.
        weights: pretrained weights: ``"DEFAULT"``/``"IMAGENET1K_V1"`` (torchvision's), a
            ``.safetensors``/``.pth`` file, or zoo weights (shipped name or ``save_pretrained``
            folder). Loaded once here; the saved hyperparameters record ``None`` because
            checkpoints carry the weights themselves.
        resize_to: side the inputs are resized to before the net (None: automatic, see image_size).
        finetune: ``full``, ``feature_extractor``, ``top<k>`` or ``gradual`` (see :mod:`zoo.finetune`).
        backbone_lr_scale: learning rate of the conv layers relative to ``lr``.
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
        small: bool = False,
        in_channels: int = 3,
        image_size: int = 224,
        dropout: float = 0.5,
        hidden_size: int | None = None,
        weights: str | None = None,
        resize_to: int | None = None,
        finetune: str = "full",
        backbone_lr_scale: float = 1.0,
        unfreeze_every: int = 1,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        **kwargs,
    ) -> None:
        cfg = SMALL if small else IMAGENET
        source, resize_to = prepare_pretrained("alexnet", weights, in_channels, cfg.min_size, image_size, resize_to, kwargs)
        num_classes, class_names = head_settings(source, num_classes, class_names)
        weights = None  # noqa: F841 - recorded as None by save_hyperparameters (see Args)
        super().__init__(num_classes=num_classes, class_names=class_names, **kwargs)
        net_channels = in_channels if small else 3
        self.input_shape = (in_channels, image_size, image_size)
        self.net = AlexNetNet(self.hparams.num_classes, net_channels, small, dropout, hidden_size)
        self.setup_finetuning(finetune, backbone_lr_scale, unfreeze_every, net_channels, resize_to, source)
