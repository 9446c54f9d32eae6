"""LightningModules, one file per family."""

from zoo.models.alexnet import AlexNet
from zoo.models.autoencoder import VAE, Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from zoo.models.base import ZooModule
from zoo.models.gan import GAN
from zoo.models.lenet import LeNet5
from zoo.models.mlp import MLP
from zoo.models.reconstruction import ReconstructionModule
from zoo.models.rnn import LSTMClassifier, LSTMForecaster
from zoo.models.supervised import SupervisedModule
from zoo.models.vgg import VGG

__all__ = [
    "AlexNet", "VGG",
    "VAE", "Autoencoder", "DenoisingAutoencoder", "ReconstructionModule", "SparseAutoencoder",
    "GAN", "MLP", "LeNet5", "LSTMClassifier", "LSTMForecaster", "SupervisedModule", "ZooModule"]
