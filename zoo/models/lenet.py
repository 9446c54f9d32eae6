"""LeNet-5 as a LightningModule; the layers are in :mod:`zoo.nets.lenet`."""

from __future__ import annotations

from zoo.models.supervised import SupervisedModule
from zoo.nets.lenet import LeNet5Net


class LeNet5(SupervisedModule):
    """LeNet-5 image classifier for (N, C, H, W) inputs in [0, 1].

    Args:
        in_channels: 1 for grayscale, 3 for colour images.
        image_size: height and width of the input (28 for MNIST, 32 for CIFAR-10).
        activation: activation after every conv and hidden FC layer (``tanh`` as in the paper).
        pool: ``max`` or ``avg`` (the paper's subsampling is closer to ``avg``).
        dropout: dropout before the FC layers.
        **kwargs: ``num_classes``, optimiser, normalisation and fine-tuning settings of
            :class:`~zoo.models.supervised.SupervisedModule`.
    """

    input_range = (0.0, 1.0)
    tasks = ("multiclass",)

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        activation: str = "relu",
        pool: str = "max",
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.take_images(in_channels, image_size)
        self.build_net(LeNet5Net, num_classes=self.num_outputs)  # from the arguments above, checked there
