import torch

from tests.cases import ModelCase
from tests.fakes import RandomImages

CASES = [
    ModelCase("mlp", dict(hidden_sizes=[32, 16], mean=[0.5], std=[0.25]), make_datamodule=RandomImages,
              scalar=lambda m, x: m(x).logsumexp(1).sum(), output_shape=(4, 10)),
    ModelCase("lenet5", dict(mean=[0.1307], std=[0.3081]), make_datamodule=RandomImages,
              scalar=lambda m, x: m(x).logsumexp(1).sum(), output_shape=(4, 10)),
    ModelCase("lenet5", dict(in_channels=3, image_size=32, activation="tanh", pool="avg"),
              make_input=lambda: torch.rand(4, 3, 32, 32), make_datamodule=lambda: RandomImages(shape=(3, 32, 32)),
              scalar=lambda m, x: m(x).logsumexp(1).sum(), output_shape=(4, 10), id="lenet5-rgb32"),
]
