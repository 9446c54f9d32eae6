"""Supervised training written once: loss, metrics, optimiser, schedule, penalties and fine-tuning.

An architecture subclasses :class:`SupervisedModule`, sets ``input_shape`` and installs its net
with :meth:`~SupervisedModule.set_net` (a :class:`~zoo.nets.layers.ClassifierNet`); everything else
lives here.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Literal

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from zoo.data.framing import check_framing_name
from zoo.errors import UsageError
from zoo.finetune import FineTuning, FrozenOutputs
from zoo.models.base import ZooModule, compute_and_reset
from zoo.nets.checks import check_image_channels
from zoo.nets.layers import InputAdapter
from zoo.optim import check_optim_args

Task = Literal["multiclass", "binary", "regression"]


def _metrics(task: str, num_classes: int) -> torchmetrics.MetricCollection:
    if task == "multiclass":
        return torchmetrics.MetricCollection({"acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)})
    if task == "binary":
        return torchmetrics.MetricCollection({"acc": torchmetrics.Accuracy(task="binary")})
    return torchmetrics.MetricCollection({"mse": torchmetrics.MeanSquaredError(), "mae": torchmetrics.MeanAbsoluteError()})


class SupervisedModule(ZooModule):
    """Shared training logic for classifiers and regressors.

    Args:
        task: ``multiclass`` (softmax + cross-entropy, outputs logits (N, num_classes)),
            ``binary`` (sigmoid + BCE, outputs one logit (N, 1)) or ``regression``
            (outputs (N, num_outputs), loss ``regression_loss``).
        num_classes: classes for ``multiclass``; number of outputs for ``regression``.
        regression_loss: ``mse`` or ``mae`` (regression only).
        label_smoothing: share of the target probability spread evenly over all classes
            (multiclass only; Szegedy et al. 2016). 0 is plain cross-entropy.
        optimizer: sgd, sgd_momentum, adam, adamw, rmsprop or adagrad.
        lr: (peak) learning rate.
        weight_decay: L2 penalty, applied by the optimiser.
        momentum: momentum for sgd_momentum and rmsprop.
        l1: weight of an L1 penalty on all weight matrices/kernels, added to the training loss.
        scheduler: none, cosine, onecycle or step (see :func:`zoo.optim.build_scheduler`).
        mean: per-channel input mean subtracted inside the model (None: no normalisation).
        std: per-channel input standard deviation.
        class_names: the name of each class, in output order (None: unnamed); kept with the weights.
        input_framing: how the training images were framed, a key of
            :data:`zoo.data.framing.FRAMINGS` (``"mnist"``: light digits on black, fitted into a 20x20
            box and centred by mass in 28x28); kept with the weights, so that ``zoo infer`` brings
            image files into that format. None: the DataModule's framing when training starts.
        input_table: how a table's raw rows become the inputs: the preprocessing a
            :class:`~zoo.data.TabularDataModule` fitted on its training rows (columns, statistics,
            categories, target), kept with the weights so that ``zoo infer`` reads raw rows. None: the
            DataModule's when training starts (none for other data).
        finetune: which parameters train: ``full``, ``feature_extractor``, ``top<k>`` or ``gradual``
            (see :mod:`zoo.finetune`).
        backbone_lr_scale: learning rate of the backbone stages relative to ``lr``.
        unfreeze_every: epochs between unfreezing steps (``finetune="gradual"``).

    Pretrained weights are not an argument: :meth:`with_weights` (or ``create_model(name,
    weights=...)``) builds the model and loads them (see :mod:`zoo.pretrained`).
    """

    head_key = "head.weight"  # where a state dict of the net keeps the head's weight
    tasks: tuple[str, ...] = ("multiclass", "binary", "regression")  # the tasks the architecture takes

    def __init__(
        self,
        task: Task = "multiclass",
        num_classes: int = 10,
        regression_loss: Literal["mse", "mae"] = "mse",
        label_smoothing: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        l1: float = 0.0,
        scheduler: str = "none",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        input_framing: str | None = None,
        input_table: dict | None = None,
        finetune: str = "full",
        backbone_lr_scale: float = 1.0,
        unfreeze_every: int = 1,
    ) -> None:
        super().__init__()
        if task not in ("multiclass", "binary", "regression"):
            raise ValueError(f"task must be 'multiclass', 'binary' or 'regression', got {task!r}")
        if task not in self.tasks:
            raise ValueError(f"{type(self).__name__} is a {' or '.join(self.tasks)} classifier, got task={task!r}")
        if task == "multiclass" and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 for multiclass, got {num_classes}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if regression_loss not in ("mse", "mae"):
            raise ValueError(f"regression_loss must be 'mse' or 'mae', got {regression_loss!r}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if label_smoothing and task != "multiclass":
            raise ValueError(f"label_smoothing is for multiclass classifiers, got task={task!r}")
        if not l1 >= 0:
            raise ValueError(f"l1 must be >= 0, got {l1}")
        check_optim_args(optimizer, lr, weight_decay, momentum, scheduler)
        check_framing_name(input_framing)
        self.finetuning = FineTuning(finetune, backbone_lr_scale, unfreeze_every)
        self.save_hyperparameters()
        self._register_normalization(mean, std)
        self.input_adapter: InputAdapter | None = None  # see adapt_inputs
        self._epoch_inputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}  # see score_at_epoch_end
        self._frozen: FrozenOutputs | None = None  # see use_frozen_outputs
        self.task = task
        self.num_outputs = 1 if task == "binary" else num_classes
        if class_names is not None:
            self.name_classes(class_names)
        if task != "regression":
            self.monitor, self.monitor_mode = "val/acc", "max"
        metrics = _metrics(task, num_classes)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.net: nn.Module  # installed by the subclass with set_net

    # ----- construction -------------------------------------------------------------------------

    def set_net(self, net: nn.Module) -> None:
        """Install the architecture's net and apply the fine-tuning strategy to its backbone."""
        self.net = net
        self.finetuning.attach(net)

    def build_net(self, net_class: type[nn.Module], **derived) -> None:
        """Install a ``net_class`` built from this model's hyperparameters (see :meth:`set_net`).

        Each argument is declared once: its default, type and doc in the model's signature (what
        ``--help``, checkpoints and weights show), its check in the net. So every argument of the net
        takes the model's hyperparameter of the same name, except ``derived``: the values the model
        works out itself, such as its number of outputs or the channels its input adapter gives the net.
        """
        names = [name for name in inspect.signature(net_class).parameters if name not in derived]
        undeclared = [name for name in names if name not in self.hparams]
        if undeclared:
            raise TypeError(f"{net_class.__name__} takes {', '.join(undeclared)}, which {type(self).__name__} "
                            "neither declares nor derives")
        self.set_net(net_class(**{name: self.hparams[name] for name in names}, **derived))

    def take_images(self, in_channels: int, image_size: int) -> None:
        """Inputs are square grayscale or RGB images, (N, in_channels, image_size, image_size)."""
        self.input_shape = (check_image_channels(in_channels), image_size, image_size)

    def adapt_inputs(self, net_channels: int, image_size: int, resize_to: int | None, min_size: int) -> None:
        """Make data inputs fit a net that takes ``net_channels`` channels and at least ``min_size`` pixels.

        Grayscale inputs are repeated to the net's channels; inputs smaller than ``min_size`` are
        resized up to it (``resize_to`` None), or to ``resize_to``. Checks the normalisation too:
        mean/std apply to the net's channels.
        """
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if resize_to is None and image_size < min_size:
            resize_to = min_size
        if resize_to is not None and resize_to < min_size:
            raise ValueError(f"resize_to must be >= {min_size} for this architecture, got {resize_to}")
        if self.input_mean is not None and len(self.input_mean) != net_channels:
            raise ValueError(f"mean/std need {net_channels} values (one per channel the net sees), "
                             f"got {len(self.input_mean)}")
        self.input_adapter = InputAdapter(net_channels, resize_to)

    @property
    def class_count(self) -> int | None:
        """How many classes the outputs stand for: two for a binary classifier's one logit, else one per
        output; None for a regressor."""
        if self.task == "regression":
            return None
        return 2 if self.task == "binary" else self.num_outputs

    @property
    def input_framing(self) -> str | None:
        """How inputs are framed, a key of :data:`zoo.data.framing.FRAMINGS` (None: not known)."""
        return self.hparams.get("input_framing")

    @property
    def table_contract(self) -> dict | None:
        return self.hparams.get("input_table")

    def setup(self, stage: str) -> None:
        # An unknown framing takes the DataModule's (MNIST's 20x20 box), so that every checkpoint and
        # published weight says what its inputs look like (and, see ZooModule, what its classes are);
        # a table's preprocessing likewise.
        super().setup(stage)
        framing = getattr(self.trainer.datamodule, "framing", None)
        if self.input_framing is None and framing is not None:
            check_framing_name(framing)
            self.hparams["input_framing"] = framing
        table = getattr(self.trainer.datamodule, "table_preprocessing", None)
        if table is not None and tuple(self.input_shape) != (len(table["features"]),):
            raise UsageError(f"{type(self).__name__} takes inputs of shape {tuple(self.input_shape)}, but the table's rows "
                             f"are {len(table['features'])} features each: train a model that takes features (--model mlp; "
                             "in Python, zoo.create_model(\"mlp\", **datamodule.model_settings()))")
        if self.table_contract is None and table is not None:
            self.hparams["input_table"] = table

    # ----- what the model does (see ZooModule) ------------------------------------------------

    @property
    def gives(self) -> str:
        return "values" if self.task == "regression" else "classes"

    def embedding(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x)  # what the head reads

    def _cacheable_stages(self) -> int:
        # The cache holds one output per image: sequences vary in length, and stages with dropout
        # (an MLP's, say) draw new masks every step, so those train from their inputs.
        return self.finetuning.cacheable_stages() if self.takes == "images" else 0

    def frozen_front(self):
        stages = self._cacheable_stages()
        if stages == 0:
            return None

        def front(x: torch.Tensor) -> torch.Tensor:  # (N, *input_shape) -> the output of the frozen stages
            self.validate_input(x)
            return self.net.forward_stages(self.normalize(self.adapt(x)), stages)

        return front

    def use_frozen_outputs(self, on: bool) -> None:
        front = self.frozen_front() if on else None
        self._frozen = None if front is None else FrozenOutputs(self._cacheable_stages(), front)

    def describe_output(self, batch: str, output_shape: tuple[int, ...]) -> str:
        if self.task == "binary":
            return f"logits ({batch}, 1): sigmoid gives the probability of class 1"
        if self.task == "multiclass":
            return f"logits ({batch}, {self.num_outputs}): softmax gives the class probabilities"
        return f"predictions ({batch}, {self.num_outputs})"

    @classmethod
    def weights_start(cls, weights: str, hparams: dict, new_head: bool = False):
        """Pretrained ``weights`` as the start of this class's net (see :mod:`zoo.pretrained`).

        ``num_classes``, ``class_names``, ``mean`` and ``std`` left unset come from the weights:
        their head is kept as it is, with its class names, unless ``num_classes`` differs or
        ``new_head`` is set. Every other tensor must fit exactly.
        """
        from zoo.pretrained import classifier_start

        return classifier_start(cls, weights, hparams, new_head)

    @classmethod
    def torchvision_arch(cls, hparams: dict) -> str | None:
        """torchvision's name of this architecture with ``hparams``, for weights by enum name (None: none)."""
        return None

    # ----- forward ------------------------------------------------------------------------------

    @property
    def resize_to(self) -> int | None:
        """The side inputs are resized to before the net (None: not resized)."""
        return None if self.input_adapter is None else self.input_adapter.size

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Data inputs as the net takes them (see :meth:`adapt_inputs`; unchanged by default)."""
        return x if self.input_adapter is None else self.input_adapter(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or predictions (regression) for inputs of ``input_shape``."""
        self.validate_input(x)
        frozen = self._frozen
        if frozen is not None and frozen.active:  # a validation step: the frozen stages' outputs kept per batch
            return self.net.forward_head(self.net.forward_features_after(frozen.validation_outputs(x), frozen.stages))
        return self.net(self.normalize(self.adapt(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation, (N, num_features)."""
        self.validate_input(x)
        return self.net.forward_features(self.normalize(self.adapt(x)))

    # ----- fine-tuning (zoo.finetune) -----------------------------------------------------------

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self.finetuning.keep_frozen_norms_in_eval()
        return self

    def on_after_backward(self) -> None:
        self.finetuning.drop_frozen_gradients()

    def configure_callbacks(self):
        return self.finetuning.callbacks()

    def optimizer_groups(self) -> list[dict]:
        return self.finetuning.param_groups(self, self.hparams.lr)

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and the predictions the metrics should see."""
        if self.task == "multiclass":
            return F.cross_entropy(output, target, label_smoothing=self.hparams.label_smoothing), output
        if self.task == "binary":
            logits = output.squeeze(1)
            return F.binary_cross_entropy_with_logits(logits, target.float()), logits
        target = target.to(output.dtype).view_as(output)
        loss_fn = F.mse_loss if self.hparams.regression_loss == "mse" else F.l1_loss
        return loss_fn(output, target), output

    def _outputs(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        frozen = self._frozen
        if frozen is None or stage == "test":
            return self(x)
        if stage == "train":  # x: the outputs of the frozen stages (see use_frozen_outputs)
            return self.net.forward_head(self.net.forward_features_after(x, frozen.stages))
        frozen.active = True  # through forward, for the callbacks that watch it
        try:
            return self(x)
        finally:
            frozen.active = False

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss, preds = self._loss(self._outputs(x, stage), y)
        target = y.view_as(preds) if self.task == "regression" else y
        if stage == "train":  # logged once per epoch: see ZooModule
            self.score_at_epoch_end("train_metrics", preds, target)
            self.log_train_loss(loss, x.shape[0])
        else:  # epoch-level values, averaged across DDP ranks
            metrics = getattr(self, f"{stage}_metrics")
            metrics.update(preds, target)
            self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def score_at_epoch_end(self, metrics: str, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Keep a training step's predictions for ``getattr(self, metrics)``, scored at the epoch's end.

        One torchmetrics update per step costs more Python than the rest of the zoo's step, and with
        its input checks a device sync; one update per epoch, of all the epoch's predictions, gives
        the same numbers. Classifiers keep predicted labels only (N integers per epoch), regressors
        their outputs.
        """
        if self.task == "multiclass":
            preds = preds.argmax(1)
        elif self.task == "binary":
            preds = (preds > 0).long()  # logits
        self._epoch_inputs.setdefault(metrics, []).append((preds.detach(), target.detach()))

    def training_metrics(self):
        return [*super().training_metrics(), self.train_metrics]

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch_inputs.clear()  # left by an epoch that ended in an exception

    def on_validation_epoch_start(self) -> None:
        if self._frozen is not None:
            self._frozen.start_validation()

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        for name, pairs in self._epoch_inputs.items():
            preds, target = (torch.cat(parts) for parts in zip(*pairs))
            getattr(self, name).update(preds, target)
        self._epoch_inputs.clear()
        return compute_and_reset(self.train_metrics) or {}

    def training_step(self, batch, batch_idx):
        loss = self._shared_step(batch, "train")
        if self.hparams.l1 > 0:
            # L1 on weights only (matrices and kernels), not on biases or norm scales.
            penalty = sum(p.abs().sum() for p in self.net.parameters() if p.ndim > 1)
            loss = loss + self.hparams.l1 * penalty
        return loss

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")
