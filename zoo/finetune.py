"""Transfer learning: pretrained weights in, a new task out.

One argument, ``finetune``, picks what a :class:`FineTuneMixin` model trains:

- ``"full"``: every parameter.
- ``"feature_extractor"``: the backbone (every feature block) frozen, the classifier trained.
- ``"top<k>"`` (e.g. ``"top2"``): the top ``k`` backbone blocks and the classifier trained.
- ``"gradual"``: starts as a feature extractor and unfreezes one more block (from the top) every
  ``unfreeze_every`` epochs (Howard & Ruder 2018, ULMFiT), with the backbone learning at
  ``backbone_lr_scale`` times the classifier's rate (discriminative learning rates).

The *backbone* of a net is ``net.backbone_blocks()`` when the net defines it, else ``net.features``
cut after every pooling layer (VGG's five stages, AlexNet's three, LeNet-5's two); everything else
(FC layers and the head) is the *classifier*. Frozen batch-norm layers stay in eval mode.

Under DDP the set of parameters that require gradients is fixed when the model is wrapped, so the
static strategies freeze with ``requires_grad=False`` (their set never changes and frozen layers
cost no backward pass), while ``gradual`` keeps every parameter requiring gradients and drops the
gradients of frozen blocks after the all-reduce (``on_after_backward``): the optimiser skips
parameters without a gradient, and DDP's reducer already covers the blocks unfrozen later.

Pretrained weights (``weights=``): torchvision's ImageNet weights by enum name (``"DEFAULT"``,
``"IMAGENET1K_V1"``, read from torch.hub's cache or downloaded), a local ``.safetensors`` or
``.pth`` state-dict file (assumed to expect ImageNet's normalisation unless mean/std are given),
or the zoo's own weights (a shipped name or a ``save_pretrained`` folder, with their normalisation).
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TOP_K = re.compile(r"top(\d+)")
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
DOWNLOAD_TIMEOUT_S = 30  # per socket operation: an unreachable server fails instead of hanging


# ----------------------------------------------------------------------------- backbone blocks


def backbone_blocks(net: nn.Module) -> list[list[nn.Module]]:
    """The feature blocks of ``net``, input side first; each block is a list of layers.

    Uses ``net.backbone_blocks()`` when defined, else cuts ``net.features`` after each pooling layer.
    """
    if hasattr(net, "backbone_blocks"):
        return [list(block) for block in net.backbone_blocks()]
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"{type(net).__name__} has neither backbone_blocks() nor an nn.Sequential `features`; "
                        "fine-tuning strategies need one of them")
    blocks: list[list[nn.Module]] = [[]]
    for layer in features:
        blocks[-1].append(layer)
        if isinstance(layer, _POOLS):
            blocks.append([])
    if not blocks[-1]:
        blocks.pop()
    elif len(blocks) > 1 and not any(p for m in blocks[-1] for p in m.parameters()):
        tail = blocks.pop()
        blocks[-1] += tail  # a trailing Flatten belongs to the last real block
    return blocks


def parse_strategy(finetune: str, num_blocks: int) -> int:
    """Number of backbone blocks frozen at the start of training for strategy ``finetune``."""
    if finetune == "full":
        return 0
    if finetune in ("feature_extractor", "gradual"):
        return num_blocks
    match = _TOP_K.fullmatch(finetune)
    if match is None:
        raise ValueError(f"finetune must be 'full', 'feature_extractor', 'gradual' or 'top<k>' (e.g. 'top2'), got {finetune!r}")
    k = int(match.group(1))
    if not 1 <= k <= num_blocks:
        raise ValueError(f"finetune={finetune!r}: k must be between 1 and the {num_blocks} backbone blocks")
    return num_blocks - k


def reset_head(net: nn.Module, num_classes: int) -> None:
    """Give ``net`` a new, freshly initialised head with ``num_classes`` outputs."""
    if hasattr(net, "reset_classifier"):
        net.reset_classifier(num_classes)
    elif isinstance(getattr(net, "head", None), nn.Linear):
        net.head = nn.Linear(net.head.in_features, num_classes)
    else:
        raise TypeError(f"{type(net).__name__} has neither reset_classifier() nor a Linear `head`")


# ----------------------------------------------------------------------------- pretrained weights


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights cannot be found or read; the message says what to do."""


@dataclass
class WeightsSource:
    """Resolved ``weights=`` argument: where the state dict comes from and what the input must look like."""

    description: str
    load: Callable[[], dict[str, torch.Tensor]]  # the *net*'s state dict (no LightningModule "net." prefix)
    min_size: int | None = None  # smallest input side the weights were validated for
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    hparams: dict = field(default_factory=dict)  # the source zoo model's hyperparameters, if any
    num_classes: int | None = None  # outputs of the weights' own head, when known without loading
    class_names: tuple[str, ...] | None = None  # what those outputs mean, in order

    def __post_init__(self) -> None:
        self.load = functools.cache(self.load)  # the head size may be read before the weights are loaded

    def head_size(self, head_key: str) -> int | None:
        """Outputs of the head stored under ``head_key`` (loads the weights if the metadata does not say)."""
        if self.num_classes is None:
            head = self.load().get(head_key)
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


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _load_torchvision(weights) -> dict[str, torch.Tensor]:
    """A torchvision weights entry from torch.hub's cache, downloading it if needed."""
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = hub_dir / Path(weights.url).name
    try:
        # weights_only=True: the state dict is read without unpickling arbitrary objects.
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False,
                                                      check_hash=False, weights_only=True)
    except Exception as err:  # noqa: BLE001 - network, HTTP and file errors all need the same advice
        raise PretrainedWeightsError(
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
        raise PretrainedWeightsError(f"{path} is not a readable state-dict file: {err}") from err
    if not isinstance(state, dict):
        raise PretrainedWeightsError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def _strip_net_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("net."): v for k, v in state.items()}


def resolve_weights(arch: str, weights: str) -> WeightsSource:
    """Interpret ``weights=``: a file, a ``save_pretrained`` folder, shipped zoo weights or a torchvision name.

    Args:
        arch: torchvision's name of the architecture (``alexnet``, ``vgg11_bn`` ...), for enum names.
        weights: see the module docstring.
    """
    from zoo.weights import load_pretrained, read_manifest

    path = Path(weights).expanduser()
    if path.is_file():
        # A bare state dict carries no metadata: assume torchvision-style ImageNet weights.
        return WeightsSource(f"file {path}", lambda: _strip_net_prefix(_load_file(path)), mean=IMAGENET_MEAN,
                             std=IMAGENET_STD)
    if path.is_dir() or weights in read_manifest():
        model = load_pretrained(weights)
        hp = dict(model.hparams)
        names = hp.get("class_names")
        return WeightsSource(f"zoo weights {weights!r}", lambda: model.net.state_dict(), mean=hp.get("mean"),
                             std=hp.get("std"), hparams=hp, num_classes=hp.get("num_classes"),
                             class_names=tuple(names) if names else None)
    entry = _torchvision_enum(arch, weights)
    if entry is None:
        raise PretrainedWeightsError(
            f"weights={weights!r} is not a file, a save_pretrained folder, shipped zoo weights or one of "
            f"torchvision's {arch} weights ('DEFAULT', or an enum name such as 'IMAGENET1K_V1')")
    transforms = entry.transforms()
    categories = tuple(entry.meta["categories"])
    return WeightsSource(f"torchvision {entry}", lambda: _load_torchvision(entry), min_size=min(entry.meta["min_size"]),
                         mean=tuple(transforms.mean), std=tuple(transforms.std), num_classes=len(categories),
                         class_names=categories)


def load_into(net: nn.Module, source: WeightsSource, num_classes: int) -> None:
    """Load ``source`` into ``net`` by name (every key and shape checked), then fit the head to ``num_classes``.

    A head of another size in the file (1000 ImageNet classes, 10 digits) is loaded as is and then
    replaced by a fresh head with ``num_classes`` outputs.
    """
    from zoo.weights import WeightsError, load_state_strict

    state = source.load()
    head_name = next(name for name, module in net.named_modules() if module is net.head)
    file_head = state.get(f"{head_name}.weight")
    if file_head is not None and file_head.shape != net.head.weight.shape:
        reset_head(net, file_head.shape[0])
    try:
        load_state_strict(net, state, source.description)
    except WeightsError as err:
        raise PretrainedWeightsError(str(err)) from err
    if net.head.out_features != num_classes:
        reset_head(net, num_classes)


# ----------------------------------------------------------------------------- the model mixin


class FineTuneMixin:
    """Fine-tuning for a :class:`~zoo.models.supervised.SupervisedModule` (put it first in the bases).

    The subclass builds ``self.net`` and then calls :meth:`setup_finetuning`. Inputs pass through
    :meth:`adapt` (grayscale to 3 channels, resize to ``resize_to``) before normalisation.
    """

    net: nn.Module

    def setup_finetuning(self, finetune: str, backbone_lr_scale: float, unfreeze_every: int,
                         net_channels: int, resize_to: int | None, source: WeightsSource | None = None) -> None:
        """Load ``source`` into ``self.net`` (if given), apply strategy ``finetune`` (see the module
        docstring) and record how inputs are adapted."""
        if self.task != "multiclass":
            raise ValueError(f"{type(self).__name__} is a multiclass classifier, got task={self.task!r}")
        if source is not None:
            load_into(self.net, source, self.hparams.num_classes)
        if not backbone_lr_scale > 0:
            raise ValueError(f"backbone_lr_scale must be > 0, got {backbone_lr_scale}")
        if unfreeze_every < 1:
            raise ValueError(f"unfreeze_every must be >= 1, got {unfreeze_every}")
        if self.input_mean is not None and len(self.input_mean) != net_channels:
            raise ValueError(f"mean/std need {net_channels} values (one per channel the net sees), got {len(self.input_mean)}")
        self.net_channels, self.resize_to = net_channels, resize_to
        self._blocks = backbone_blocks(self.net)
        self.finetune = finetune
        self.frozen_blocks = parse_strategy(finetune, len(self._blocks))
        if finetune != "gradual":  # static: frozen for good, so requires_grad can say so (DDP-safe)
            for param in self._frozen_parameters():
                param.requires_grad_(False)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def _block_parameters(self, blocks: list[list[nn.Module]]) -> list[nn.Parameter]:
        return [p for block in blocks for layer in block for p in layer.parameters()]

    def _frozen_parameters(self) -> list[nn.Parameter]:
        return self._block_parameters(self._blocks[: self.frozen_blocks])

    def set_frozen_blocks(self, count: int) -> None:
        """Freeze the lowest ``count`` backbone blocks (used by :class:`GradualUnfreezing`)."""
        if not 0 <= count <= self.num_blocks:
            raise ValueError(f"count must be in [0, {self.num_blocks}], got {count}")
        self.frozen_blocks = count
        self.train(self.training)  # puts newly unfrozen batch norms back into training mode

    def trainable_parameter_names(self) -> set[str]:
        """Names of the parameters the optimiser updates in the current state of the schedule."""
        frozen = {id(p) for p in self._frozen_parameters()}
        return {n for n, p in self.named_parameters() if p.requires_grad and id(p) not in frozen}

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # frozen batch norms keep their running statistics: always eval mode
            for block in self._blocks[: self.frozen_blocks]:
                for layer in block:
                    for module in layer.modules():
                        if isinstance(module, _NORMS):
                            module.eval()
        return self

    def on_after_backward(self) -> None:
        # Gradual unfreezing: gradients of frozen blocks exist (DDP needs them) but must not be applied.
        for param in self._frozen_parameters():
            param.grad = None

    def configure_callbacks(self):
        if self.finetune == "gradual":
            return [GradualUnfreezing(self.hparams.unfreeze_every)]
        return []

    def optimizer_groups(self) -> list[dict]:
        """The backbone at ``backbone_lr_scale`` times the rate, everything else at ``lr``
        (used by :meth:`zoo.models.base.ZooModule.configure_optimizers`)."""
        hp = self.hparams
        backbone = {id(p) for p in self._block_parameters(self._blocks)}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if id(p) in backbone], "lr": hp.lr * hp.backbone_lr_scale},
            {"params": [p for p in trainable if id(p) not in backbone], "lr": hp.lr},
        ]
        return [g for g in groups if g["params"]]

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Make data inputs fit the net: repeat grayscale to the net's channels, resize to ``resize_to``."""
        if x.shape[1] != self.net_channels:
            x = x.expand(-1, self.net_channels, -1, -1)  # (N, 1, H, W) -> (N, 3, H, W)
        if self.resize_to is not None and x.shape[-1] != self.resize_to:
            x = F.interpolate(x, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.resize_to)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for inputs of ``input_shape`` in [0, 1]."""
        self.validate_input(x)
        return self.net(self.normalize(self.adapt(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation, (N, num_features)."""
        self.validate_input(x)
        return self.net.forward_features(self.normalize(self.adapt(x)))


def prepare_pretrained(arch: str, weights: str | None, in_channels: int, arch_min_size: int, image_size: int,
                       resize_to: int | None, kwargs: dict) -> tuple[WeightsSource | None, int | None]:
    """Before the model's ``__init__`` reaches its base: check ``in_channels``, resolve ``weights``
    and derive ``resize_to`` and the normalisation (see :func:`input_settings`)."""
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    source = resolve_weights(arch, weights) if weights is not None else None
    return source, input_settings(source, arch_min_size, image_size, resize_to, kwargs)


def input_settings(source: WeightsSource | None, arch_min_size: int, image_size: int, resize_to: int | None,
                   kwargs: dict) -> int | None:
    """Default ``resize_to`` and normalisation from the weights' metadata; fills ``kwargs`` mean/std in place.

    Inputs smaller than the weights' minimum size (torchvision's ``meta["min_size"]``, else the
    architecture's) are resized up to it. Without explicit mean/std, the weights' own are used.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    min_size = (source.min_size if source and source.min_size else arch_min_size)
    if resize_to is None and image_size < min_size:
        resize_to = min_size
    if resize_to is not None and resize_to < arch_min_size:
        raise ValueError(f"resize_to must be >= {arch_min_size} for this architecture, got {resize_to}")
    if source is not None and kwargs.get("mean") is None and kwargs.get("std") is None and source.mean is not None:
        kwargs["mean"], kwargs["std"] = list(source.mean), list(source.std)
    return resize_to


TORCHVISION_HEAD = "classifier.6.weight"  # FC8 of AlexNet and VGG in torchvision's layout


def head_settings(source: WeightsSource | None, num_classes: int | None, class_names, default: int = 10,
                  head_key: str = TORCHVISION_HEAD) -> tuple[int, list[str] | None]:
    """``num_classes`` and ``class_names`` of a model built from ``source``.

    Without ``num_classes`` the weights' own head is kept, with its class names (ImageNet's 1,000
    categories for torchvision's weights), as torchvision does; without weights it is ``default``.
    A different ``num_classes`` gets a fresh head, whose classes only the caller can name.
    """
    stored = source.head_size(head_key) if source is not None else None
    if num_classes is None:
        num_classes = stored if stored is not None else default
    if class_names is None and source is not None and source.class_names and num_classes == stored:
        class_names = list(source.class_names)
    return num_classes, class_names


# ----------------------------------------------------------------------------- gradual unfreezing


class GradualUnfreezing(L.Callback):
    """Unfreeze one more backbone block (from the top) every ``every`` epochs.

    The number of unfrozen blocks is part of the checkpoint (``state_dict``), so a resumed run
    continues from where it stopped instead of re-freezing: the state restored from the checkpoint
    is applied before the first resumed step.

    Args:
        every: epochs between two unfreezing steps.
    """

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.unfrozen = 0

    @property
    def state_key(self) -> str:
        return f"GradualUnfreezing{{every={self.every}}}"

    def state_dict(self) -> dict:
        return {"unfrozen": self.unfrozen}

    def load_state_dict(self, state_dict: dict) -> None:
        self.unfrozen = int(state_dict["unfrozen"])

    def _apply(self, pl_module) -> None:
        pl_module.set_frozen_blocks(pl_module.num_blocks - min(self.unfrozen, pl_module.num_blocks))

    def on_fit_start(self, trainer, pl_module) -> None:
        self._apply(pl_module)  # a resumed run: the restored count, before any step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        scheduled = trainer.current_epoch // self.every
        self.unfrozen = min(max(self.unfrozen, scheduled), pl_module.num_blocks)
        self._apply(pl_module)
