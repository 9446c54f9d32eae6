"""Any zoo classifier's weights as the starting point of a new task (e.g. ``lenet5_mnist`` -> Fashion-MNIST)."""

from __future__ import annotations

from zoo.finetune import FineTuneMixin, reset_head
from zoo.models.supervised import SupervisedModule


class TransferClassifier(FineTuneMixin, SupervisedModule):
    """A pretrained zoo classifier's net with a new head, trained by a fine-tuning strategy.

    The source's architecture, input shape, input adaptation and (unless given) normalisation are
    kept; the head is replaced when ``num_classes`` differs or ``new_head`` is set.

    Args:
        source: shipped weights name (``zoo list``) or a ``save_pretrained`` folder of a
            multiclass zoo classifier whose net has a backbone (see :mod:`zoo.finetune`).
        new_head: always start from a fresh head, even for the same number of classes (a new task
            whose labels mean something else, e.g. digits -> clothes).
        finetune: ``full``, ``feature_extractor``, ``top<k>`` or ``gradual``.
        backbone_lr_scale: learning rate of the backbone relative to ``lr``.
        unfreeze_every: epochs between unfreezing steps (``finetune="gradual"``).
        **kwargs: ``num_classes``, optimiser and normalisation settings of
            :class:`~zoo.models.supervised.SupervisedModule`.
    """

    def __init__(
        self,
        source: str = "lenet5_mnist",
        new_head: bool = True,
        finetune: str = "full",
        backbone_lr_scale: float = 1.0,
        unfreeze_every: int = 1,
        **kwargs,
    ) -> None:
        from zoo.weights import load_pretrained

        pretrained = load_pretrained(source)
        if not isinstance(pretrained, SupervisedModule) or pretrained.task != "multiclass":
            raise ValueError(f"source {source!r} is a {type(pretrained).__name__}, not a multiclass zoo classifier")
        if kwargs.get("mean") is None and kwargs.get("std") is None:
            kwargs["mean"], kwargs["std"] = pretrained.hparams.get("mean"), pretrained.hparams.get("std")
        super().__init__(**kwargs)
        self.input_shape = tuple(pretrained.input_shape)
        self.net = pretrained.net.train()
        if new_head or self.net.head.out_features != self.hparams.num_classes:
            reset_head(self.net, self.hparams.num_classes)
        self.setup_finetuning(finetune, backbone_lr_scale, unfreeze_every,
                              getattr(pretrained, "net_channels", self.input_shape[0]), getattr(pretrained, "resize_to", None))
