import torch

from tests.cases import ModelCase
from tests.fakes import RandomImages

# VGG at full width is 130 M parameters; these keep torchvision's layout with narrow layers.
TINY_VGG = dict(width_divisor=16, hidden_size=32, pooled_size=1, image_size=32, num_classes=10)


def _logsumexp(model, x):
    return model(x).logsumexp(1).sum()


def _rgb32():
    return torch.rand(2, 3, 32, 32)


CASES = [
    # ImageNet layout (narrow FC layers) on 32-pixel images: resized to AlexNet's minimum of 63 inside the model.
    ModelCase("alexnet", dict(image_size=32, hidden_size=64, num_classes=10), make_input=_rgb32,
              make_datamodule=lambda: RandomImages(shape=(3, 32, 32)), scalar=_logsumexp, output_shape=(2, 10)),
    ModelCase("alexnet_small", dict(in_channels=1, image_size=28, mean=[0.286], std=[0.353]),
              make_datamodule=RandomImages, scalar=_logsumexp, output_shape=(4, 10)),
    *[ModelCase(name, TINY_VGG, make_input=_rgb32, make_datamodule=lambda: RandomImages(shape=(3, 32, 32)),
                scalar=_logsumexp, output_shape=(2, 10))
      for name in ("vgg11", "vgg13", "vgg16", "vgg19")],
    *[ModelCase(name, {**TINY_VGG, "in_channels": 1, "image_size": 28, "finetune": "gradual"},
                make_datamodule=RandomImages, scalar=_logsumexp, output_shape=(4, 10), id=f"{name}-gray28-gradual")
      for name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")],
    # gradual keeps requires_grad on every parameter, so the gradient check sees all of them
    ModelCase("transfer", dict(source="lenet5_mnist", finetune="gradual", num_classes=5),
              make_datamodule=lambda: RandomImages(num_classes=5), scalar=_logsumexp, output_shape=(4, 5)),
]
