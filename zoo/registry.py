"""Names -> builders for models and DataModules.

Entries are stored as ``"module:attribute"`` strings and imported on first use, so listing names
costs nothing and ``import zoo`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (import path, fixed keyword arguments)
_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("zoo.models.mlp:MLP", {}),
    "lenet5": ("zoo.models.lenet:LeNet5", {}),
    "alexnet": ("zoo.models.alexnet:AlexNet", {}),
    "alexnet_small": ("zoo.models.alexnet:AlexNet", {"small": True}),
    "vgg11": ("zoo.models.vgg:VGG", {"depth": 11, "batch_norm": False}),
    "vgg11_bn": ("zoo.models.vgg:VGG", {"depth": 11, "batch_norm": True}),
    "vgg13": ("zoo.models.vgg:VGG", {"depth": 13, "batch_norm": False}),
    "vgg13_bn": ("zoo.models.vgg:VGG", {"depth": 13, "batch_norm": True}),
    "vgg16": ("zoo.models.vgg:VGG", {"depth": 16, "batch_norm": False}),
    "vgg16_bn": ("zoo.models.vgg:VGG", {"depth": 16, "batch_norm": True}),
    "vgg19": ("zoo.models.vgg:VGG", {"depth": 19, "batch_norm": False}),
    "vgg19_bn": ("zoo.models.vgg:VGG", {"depth": 19, "batch_norm": True}),
    "transfer": ("zoo.pretrained:transfer", {}),  # a builder: any zoo classifier started from zoo weights
    "ae": ("zoo.models.autoencoder:Autoencoder", {}),
    "dae": ("zoo.models.autoencoder:DenoisingAutoencoder", {}),
    "sparse_ae": ("zoo.models.autoencoder:SparseAutoencoder", {}),
    "vae": ("zoo.models.autoencoder:VAE", {}),
    "gan": ("zoo.models.gan:GAN", {}),
    "lstm": ("zoo.models.rnn:LSTMClassifier", {}),
    "lstm_forecaster": ("zoo.models.rnn:LSTMForecaster", {}),
}

_DATAMODULES: dict[str, tuple[str, dict[str, Any]]] = {
    "mnist": ("zoo.data.vision:MNISTDataModule", {}),
    "fashion_mnist": ("zoo.data.vision:FashionMNISTDataModule", {}),
    "cifar10": ("zoo.data.vision:CIFAR10DataModule", {}),
    "digits": ("zoo.data.vision:DigitsDataModule", {}),
    "function": ("zoo.data.function:FunctionDataModule", {}),
    "image_folder": ("zoo.data.folder:ImageFolderDataModule", {}),
    "label_budget": ("zoo.data.subset:LabelBudgetDataModule", {}),
    "timeseries": ("zoo.data.sequence:TimeSeriesDataModule", {}),
    "noisy_sine": ("zoo.data.sequence:NoisySineDataModule", {}),
    "tabular": ("zoo.data.tabular:TabularDataModule", {}),
}


def _import(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _lookup(table: dict[str, tuple[str, dict[str, Any]]], name: str, kind: str) -> tuple[Any, dict[str, Any]]:
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}")
    target, fixed = table[name]
    return _import(target), fixed


def registered_class(kind: str, name: str) -> tuple[Any, dict[str, Any]]:
    """What a registered name builds (a class, or a builder function) and its fixed keyword arguments.

    Args:
        kind: ``"model"`` or ``"data"``.
        name: one of :func:`list_models` or :func:`list_datamodules`.
    """
    return _lookup(_MODELS if kind == "model" else _DATAMODULES, name, kind)


def class_by_path(class_path: str, classes: dict[str, type]) -> type | None:
    """The class of ``classes`` (as :func:`model_classes` gives them) named by its full path or as its
    package exports it (``zoo.models.LeNet5`` for ``zoo.models.lenet.LeNet5``, as recipes and
    checkpoints name them); None if none is."""
    for path, cls in classes.items():
        if class_path in (path, f"{path.rsplit('.', 2)[0]}.{cls.__qualname__}"):
            return cls
    return None


def register_model(name: str, target: str, **fixed: Any) -> None:
    """Add a model under ``name``: ``target`` is ``"package.module:Class"`` (imported on first use).

    The zoo's own models are listed in ``_MODELS`` above; a package of your own registers its
    models with this (see CONTRIBUTING.md). ``fixed`` are keyword arguments the name always passes.
    """
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is registered already ({_MODELS[name][0]})")
    if target.count(":") != 1:
        raise ValueError(f"target must be 'package.module:Class', got {target!r}")
    _MODELS[name] = (target, dict(fixed))


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model`."""
    _MODELS.pop(name)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_MODELS)


def list_datamodules() -> list[str]:
    """Names accepted by :func:`create_datamodule`."""
    return sorted(_DATAMODULES)


def create_model(name: str, weights: str | None = None, new_head: bool = False, **hparams: Any):
    """Build a registered model (a ``LightningModule``), with fresh weights or started from ``weights``.

    Args:
        name: one of :func:`list_models`.
        weights: pretrained weights for a classifier: torchvision's by name (``"IMAGENET1K_V1"``,
            AlexNet and VGG), a state-dict file, or zoo weights (see :mod:`zoo.pretrained`). Unset
            ``num_classes``, ``class_names``, ``mean`` and ``std`` then come from the weights.
        new_head: with ``weights``, start from a fresh head even if the weights' head fits.
        **hparams: constructor arguments of the model class, e.g. ``num_classes=10``.
    """
    cls, fixed = _lookup(_MODELS, name, "model")
    if weights is not None:
        return cls.with_weights(weights, new_head=new_head, **{**fixed, **hparams})
    return cls(**{**fixed, **hparams})


def create_datamodule(name: str, **kwargs: Any):
    """Build a registered ``LightningDataModule``.

    Args:
        name: one of :func:`list_datamodules`.
        **kwargs: constructor arguments, e.g. ``batch_size=128, data_dir="/data"``.
    """
    cls, fixed = _lookup(_DATAMODULES, name, "datamodule")
    return cls(**{**fixed, **kwargs})


def model_classes() -> dict[str, type]:
    """Import path -> class for every registered model class (the allow-list for loading configs)."""
    classes = {}
    for target, _ in _MODELS.values():
        cls = _import(target)
        if isinstance(cls, type):  # not the builders (transfer), which make instances of these classes
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return classes


def datamodule_classes() -> dict[str, type]:
    """Import path -> class for every registered DataModule class."""
    classes = {}
    for target, _ in _DATAMODULES.values():
        cls = _import(target)
        classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return classes


def name_of_datamodule(cls: type) -> str | None:
    """The registered name of a DataModule class, if any."""
    for name, (target, _) in _DATAMODULES.items():
        if _import(target) is cls:
            return name
    return None
