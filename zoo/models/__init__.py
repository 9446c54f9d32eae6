"""LightningModules, one file per family."""

from zoo.models.base import ZooModule
from zoo.models.lenet import LeNet5
from zoo.models.mlp import MLP
from zoo.models.rnn import LSTMClassifier, LSTMForecaster
from zoo.models.supervised import SupervisedModule

__all__ = ["MLP", "LeNet5", "LSTMClassifier", "LSTMForecaster", "SupervisedModule", "ZooModule"]
