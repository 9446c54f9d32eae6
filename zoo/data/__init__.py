"""LightningDataModules. Image batches are float tensors in [0, 1], shape (N, C, H, W); a table's, float features (N, F)."""

from zoo.data.base import InMemoryDataModule, resolve_data_dir
from zoo.data.folder import ImageFolderDataModule
from zoo.data.function import FunctionDataModule
from zoo.data.sequence import NoisySineDataModule, TimeSeriesDataModule
from zoo.data.subset import LabelBudgetDataModule
from zoo.data.tabular import TabularDataModule
from zoo.data.vision import CIFAR10DataModule, DigitsDataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "ImageFolderDataModule",
    "LabelBudgetDataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "FunctionDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "NoisySineDataModule",
    "TabularDataModule",
    "TimeSeriesDataModule",
    "resolve_data_dir",
]
