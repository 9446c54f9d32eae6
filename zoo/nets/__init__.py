"""Plain ``nn.Module`` networks: layers only, no training logic."""

from zoo.nets.lenet import LeNet5Net
from zoo.nets.mlp import MLPNet

__all__ = ["LeNet5Net", "MLPNet"]
