"""Pretrained weights as a starting point: resolve ``weights=``, build the model from plain hyperparameters,
load the weights into its net with every key and shape checked.

``weights`` may be:

- torchvision's ImageNet weights of AlexNet and VGG by enum name (``"DEFAULT"``, ``"IMAGENET1K_V1"``),
  read from torch.hub's cache or downloaded;
- a local ``.safetensors`` or ``.pth`` state-dict file (read with ``weights_only=True``; assumed to
  expect ImageNet's normalisation unless mean/std are given);
- the zoo's own weights: a shipped name (``zoo list``) or a ``save_pretrained`` folder, with their
  normalisation and class names.

The model's ``__init__`` never sees ``weights``: :func:`classifier_start` turns the weights' metadata
into plain hyperparameters (the head's size and class names, the normalisation), the model is
built from those, and the tensors are then copied into its net. ``create_model(name, weights=...)``,
``Model.with_weights(...)`` and ``zoo fit --weights ...`` all take this route, so a checkpoint or
``save_pretrained`` folder rebuilds the model without the original weights file.
"""

from __future__ import annotations

import functools
import inspect
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import torch
from torch import nn

from zoo.errors import UsageError, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 30  # per socket operation: an unreachable server fails instead of hanging
# Hyperparameters that say how a model trains and on what data, not what its layers are: a new task
# chooses its own (its DataModule says its classes and framing).
TRAINING_HPARAMS = ("optimizer", "lr", "weight_decay", "momentum", "l1", "label_smoothing", "scheduler", "finetune",
                    "backbone_lr_scale", "unfreeze_every", "num_classes", "class_names", "input_framing",
                    "input_table")


@dataclass
class WeightsSource:
    """A resolved ``weights=`` argument: where the net's state dict comes from and what it expects."""

    description: str
    read: Callable[[], dict[str, torch.Tensor]]  # the *net*'s state dict (no LightningModule "net." prefix)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    num_classes: int | None = None  # outputs of the weights' own head, when known without reading them
    class_names: tuple[str, ...] | None = None  # what those outputs mean, in order

    def __post_init__(self) -> None:
        self.read = functools.cache(self.read)  # the head size may be needed before the weights are loaded

    def head_size(self, head_key: str) -> int | None:
        """Outputs of the head stored under ``head_key`` (reads the weights if the metadata does not say)."""
        if self.num_classes is None:
            head = self.read().get(head_key)
            self.num_classes = None if head is None else int(head.shape[0])
        return self.num_classes


def _torchvision_enum(arch: str, name: str):
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    if name == "DEFAULT":
        return enum.DEFAULT
    if name not in enum.__members__:
        return None
    return enum[name]


def _download(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` through a partial file, so that an interrupted download leaves no file.

    The timeout is the connection's own (torch.hub's download has none, and the process's socket
    default would apply to every other thread too).
    """
    print(f'Downloading: "{url}" to {path}')  # what torch.hub prints when it downloads
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with urlopen(Request(url, headers={"User-Agent": "torch.hub"}), timeout=DOWNLOAD_TIMEOUT_S) as response:
            with partial.open("wb") as file:
                shutil.copyfileobj(response, file)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _load_torchvision(weights) -> dict[str, torch.Tensor]:
    """A torchvision weights entry from torch.hub's cache, downloading it if needed."""
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = hub_dir / Path(weights.url).name
    try:
        if not cached.exists():
            _download(weights.url, cached)
        # weights_only=True: the state dict is read without unpickling arbitrary objects.
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False,
                                                  check_hash=False, weights_only=True)
    except Exception as err:  # noqa: BLE001 - network, HTTP and file errors all need the same advice
        raise WeightsError(
            f"could not get torchvision's {weights} weights: {type(err).__name__}: {err}. They are read from "
            f"{cached} or downloaded from {weights.url}. Fix: connect to the internet once (the file is cached "
            f"in $TORCH_HOME), copy the file to {cached}, or pass weights='path/to/file.pth' (or .safetensors)."
        ) from err


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"{path} is not a readable state-dict file: {err}") from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def _strip_net_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("net."): v for k, v in state.items()}


def resolve_weights(weights: str, torchvision_arch: str | None = None) -> WeightsSource:
    """Interpret ``weights=``: a file, a ``save_pretrained`` folder, shipped zoo weights or a torchvision name.

    Args:
        weights: see the module docstring.
        torchvision_arch: torchvision's name of the architecture (``alexnet``, ``vgg11_bn`` ...), for
            enum names; None for architectures torchvision has no weights of.
    """
    from zoo.weights import read_pretrained, shipped_names

    path = Path(weights).expanduser()
    if path.is_file():
        # A bare state dict carries no metadata: assume torchvision-style ImageNet weights.
        return WeightsSource(f"file {path}", lambda: _strip_net_prefix(_load_file(path)), mean=IMAGENET_MEAN,
                             std=IMAGENET_STD)
    if path.is_dir() or weights in shipped_names():
        config, state = read_pretrained(weights)
        hp = dict(config.get("hparams", {}))
        names = hp.get("class_names")
        return WeightsSource(f"zoo weights {weights!r}", lambda: _strip_net_prefix(state), mean=hp.get("mean"),
                             std=hp.get("std"), num_classes=hp.get("num_classes"),
                             class_names=tuple(names) if names else None)
    entry = _torchvision_enum(torchvision_arch, weights) if torchvision_arch else None
    if entry is None:
        torchvision = f"one of torchvision's {torchvision_arch} weights ('DEFAULT', or an enum name such as " \
                      "'IMAGENET1K_V1')" if torchvision_arch else "torchvision weights (AlexNet and VGG only)"
        raise WeightsError(
            f"weights={weights!r} is not a file, a save_pretrained folder, shipped zoo weights or {torchvision}")
    transforms = entry.transforms()
    categories = tuple(entry.meta["categories"])
    return WeightsSource(f"torchvision {entry}", lambda: _load_torchvision(entry), mean=tuple(transforms.mean),
                         std=tuple(transforms.std), num_classes=len(categories), class_names=categories)


def _settings_from(source: WeightsSource, hparams: dict[str, Any], head_key: str, new_head: bool = False,
                  default_classes: int = 10) -> dict[str, Any]:
    """The hyperparameters that ``source`` decides where ``hparams`` leaves them unset (None or absent).

    - ``num_classes``: the weights' own head (ImageNet's 1,000 classes for torchvision's weights), so
      it is kept as it is, as torchvision does; ``default_classes`` if the weights do not say.
    - ``class_names``: the weights' names, if their head is kept (same size, no ``new_head``).
    - ``mean``/``std``: the normalisation the weights were trained with.
    """
    settings: dict[str, Any] = {}
    stored = source.head_size(head_key)
    num_classes = hparams.get("num_classes")
    if num_classes is None:
        num_classes = settings["num_classes"] = stored if stored is not None else default_classes
    keeps_head = not new_head and num_classes == stored
    if hparams.get("class_names") is None and keeps_head and source.class_names:
        settings["class_names"] = list(source.class_names)
    if hparams.get("mean") is None and hparams.get("std") is None and source.mean is not None:
        settings["mean"], settings["std"] = list(source.mean), list(source.std)
    return settings


def _load_into(net: nn.Module, source: WeightsSource, new_head: bool = False) -> None:
    """Copy ``source`` into ``net`` by name, every key and shape checked; a head of another size is replaced.

    A head of another size in the file (1000 ImageNet classes, 10 digits) is loaded as is and then
    replaced by a freshly initialised head of the net's size; ``new_head`` replaces it in any case.
    """
    from zoo.weights import load_state_strict

    state = source.read()
    head = net.get_classifier()
    head_key = next(name for name, module in net.named_modules() if module is head) + ".weight"
    num_classes = head.out_features
    file_head = state.get(head_key)
    if file_head is not None and file_head.shape != head.weight.shape:
        net.reset_classifier(file_head.shape[0])
    load_state_strict(net, state, source.description)
    if new_head or net.get_classifier().out_features != num_classes:
        net.reset_classifier(num_classes)


def _resolve_for(cls: type, weights: str, hparams: dict[str, Any]) -> WeightsSource:
    """:func:`resolve_weights` for a ``cls`` model with ``hparams`` (which say its torchvision name, if any)."""
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    return resolve_weights(weights, cls.torchvision_arch({**defaults, **hparams}))


def classifier_start(cls: type, weights: str, hparams: dict[str, Any], new_head: bool = False):
    """Pretrained ``weights`` as the start of a ``cls`` classifier with ``hparams``: the hyperparameters
    the weights decide (see :func:`_settings_from`) and the function that loads them into a model built
    with those, every key and shape checked (see ``ZooModule.weights_start``)."""
    source = _resolve_for(cls, weights, hparams)
    settings = _settings_from(source, hparams, cls.head_key, new_head)
    return settings, lambda model: _load_into(model.net, source, new_head)


def transfer(source: str = "lenet5_mnist", new_head: bool = True, **hparams: Any):
    """A zoo classifier started from zoo weights, with their architecture: the start of a new task.

    The source's architecture and normalisation are kept; its training settings, number of classes
    and class names are not (give ``num_classes``, ``lr`` ... for the new task).

    Args:
        source: shipped weights name (``zoo list``) or a ``save_pretrained`` folder of a multiclass
            zoo classifier.
        new_head: start from a fresh head even for the same number of classes (a new task whose
            labels mean something else, e.g. digits -> clothes).
        **hparams: the new model's hyperparameters (``num_classes``, ``finetune``, ``lr`` ...).
    """
    from zoo.weights import model_class, read_pretrained

    config, _ = read_pretrained(source)
    cls = model_class(config, str(source))
    architecture = {k: v for k, v in config.get("hparams", {}).items() if k not in TRAINING_HPARAMS}
    if architecture.get("task", "multiclass") != "multiclass":
        raise UsageError(f"source {source!r} is a {cls.__name__} for {architecture['task']}, not a multiclass classifier")
    return cls.with_weights(source, new_head=new_head, **{**architecture, **hparams})
