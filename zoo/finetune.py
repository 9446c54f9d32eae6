"""Fine-tuning: which parameters of a classifier train, at which rate, and when frozen stages thaw.

One hyperparameter of every zoo classifier, ``finetune``, picks the strategy:

- ``"full"``: every parameter (the default, and what training from scratch is).
- ``"feature_extractor"``: the backbone (every stage) frozen, the classifier trained.
- ``"top<k>"`` (e.g. ``"top2"``): the top ``k`` backbone stages and the classifier trained.
- ``"gradual"``: starts as a feature extractor and unfreezes one more stage (from the top) every
  ``unfreeze_every`` epochs (Howard & Ruder 2018, ULMFiT).

``backbone_lr_scale`` gives the backbone its own learning rate, that many times the classifier's
(discriminative learning rates). Pretrained weights are a separate choice (:mod:`zoo.pretrained`).

It works on any net with the zoo's classifier interface (:class:`zoo.nets.layers.ClassifierNet`):
``backbone_stages()`` lists the backbone, input side first; everything else (the FC layers and
the head) is the *classifier*. Frozen batch-norm layers stay in eval mode.

Under DDP the set of parameters that require gradients is fixed when the model is wrapped, so the
static strategies freeze with ``requires_grad=False`` (their set never changes and frozen layers
cost no backward pass), while ``gradual`` keeps every parameter requiring gradients and drops the
gradients of frozen stages after the all-reduce (:meth:`FineTuning.drop_frozen_gradients`): the
optimiser skips parameters without a gradient, and DDP's reducer already covers the stages
unfrozen later.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lightning as L
import torch
from torch import nn

_TOP_K = re.compile(r"top(\d+)")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def check_strategy(finetune: str) -> None:
    if finetune not in ("full", "feature_extractor", "gradual") and _TOP_K.fullmatch(finetune) is None:
        raise ValueError(f"finetune must be 'full', 'feature_extractor', 'gradual' or 'top<k>' (e.g. 'top2'), "
                         f"got {finetune!r}")


def frozen_at_start(finetune: str, num_stages: int) -> int:
    """Number of backbone stages frozen at the start of training for strategy ``finetune``."""
    check_strategy(finetune)
    if finetune == "full":
        return 0
    if finetune in ("feature_extractor", "gradual"):
        return num_stages
    k = int(_TOP_K.fullmatch(finetune).group(1))
    if not 1 <= k <= num_stages:
        raise ValueError(f"finetune={finetune!r}: k must be between 1 and the {num_stages} backbone stages")
    return num_stages - k


class FineTuning:
    """The fine-tuning policy of one model: built from its hyperparameters, attached to its net.

    The model asks it for its optimiser's parameter groups (:meth:`param_groups`), its callbacks
    (:meth:`callbacks`), and calls :meth:`keep_frozen_norms_in_eval` from ``train()`` and
    :meth:`drop_frozen_gradients` after each backward pass.

    Args:
        finetune: ``full``, ``feature_extractor``, ``top<k>`` or ``gradual`` (see the module docstring).
        backbone_lr_scale: learning rate of the backbone relative to the classifier's.
        unfreeze_every: epochs between unfreezing steps (``gradual``).
    """

    def __init__(self, finetune: str = "full", backbone_lr_scale: float = 1.0, unfreeze_every: int = 1) -> None:
        check_strategy(finetune)
        if not backbone_lr_scale > 0:
            raise ValueError(f"backbone_lr_scale must be > 0, got {backbone_lr_scale}")
        if unfreeze_every < 1:
            raise ValueError(f"unfreeze_every must be >= 1, got {unfreeze_every}")
        self.strategy, self.backbone_lr_scale, self.unfreeze_every = finetune, backbone_lr_scale, unfreeze_every
        self.stages: list[nn.Module] = []
        self.frozen_stages = 0

    def attach(self, net: nn.Module) -> None:
        """Find ``net``'s backbone stages and freeze those the strategy starts with."""
        self.stages = list(net.backbone_stages())
        self.frozen_stages = frozen_at_start(self.strategy, len(self.stages))
        if self.strategy != "gradual":  # static: frozen for good, so requires_grad can say so (DDP-safe)
            for param in self.frozen_parameters():
                param.requires_grad_(False)
        # Now, not only in the model's train(): Lightning keeps each module's mode as it finds it when
        # fit starts, so a fresh model's frozen batch norms would otherwise train their statistics.
        self.keep_frozen_norms_in_eval()

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for stage in self.stages[: self.frozen_stages] for p in stage.parameters()]

    def set_frozen_stages(self, count: int) -> None:
        """Freeze the lowest ``count`` backbone stages (what :class:`GradualUnfreezing` does every epoch);
        call the model's ``train()`` afterwards to put unfrozen batch norms back into training mode."""
        if not 0 <= count <= self.num_stages:
            raise ValueError(f"count must be in [0, {self.num_stages}], got {count}")
        self.frozen_stages = count

    def trainable_parameter_names(self, model: nn.Module) -> set[str]:
        """Names (in ``model``) of the parameters the optimiser updates in the current state of the schedule."""
        frozen = {id(p) for p in self.frozen_parameters()}
        return {n for n, p in model.named_parameters() if p.requires_grad and id(p) not in frozen}

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """The backbone at ``backbone_lr_scale`` times ``lr``, everything else of ``model`` at ``lr``
        (one group when the two rates are the same)."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        if self.backbone_lr_scale == 1:
            return [{"params": trainable, "lr": lr}]
        backbone = {id(p) for stage in self.stages for p in stage.parameters()}
        groups = [
            {"params": [p for p in trainable if id(p) in backbone], "lr": lr * self.backbone_lr_scale},
            {"params": [p for p in trainable if id(p) not in backbone], "lr": lr},
        ]
        return [g for g in groups if g["params"]]

    def keep_frozen_norms_in_eval(self) -> None:
        """Frozen batch norms keep their running statistics: eval mode, whatever mode the model is in."""
        for stage in self.stages[: self.frozen_stages]:
            for module in stage.modules():
                if isinstance(module, _NORMS):
                    module.eval()

    def cacheable_stages(self) -> int:
        """How many of the lowest backbone stages give the same output for an input all through a fit:
        frozen for good (``feature_extractor``, the frozen ones of ``top<k>``; none for ``gradual``,
        whose stages thaw) and, up to the first dropout layer, deterministic. Frozen batch norms are in
        eval mode (:meth:`keep_frozen_norms_in_eval`), so they compute the same in training and evaluation."""
        if self.strategy == "gradual":
            return 0
        count = 0
        for stage in self.stages[: self.frozen_stages]:
            if any(isinstance(m, _DROPOUTS) and m.p > 0 for m in stage.modules()):
                break
            count += 1
        return count

    def drop_frozen_gradients(self) -> None:
        """Gradual unfreezing: frozen stages get gradients (DDP needs them), which must not be applied."""
        if self.strategy == "gradual":
            for param in self.frozen_parameters():
                param.grad = None

    def callbacks(self) -> list[L.Callback]:
        return [GradualUnfreezing(self.unfreeze_every)] if self.strategy == "gradual" else []


class GradualUnfreezing(L.Callback):
    """Unfreeze one more backbone stage (from the top) every ``every`` epochs, on a model with a
    ``finetuning`` policy (:class:`FineTuning`).

    The number of unfrozen stages is part of the checkpoint (``state_dict``), so a resumed run
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

    def _unfreeze(self, pl_module) -> None:
        policy = pl_module.finetuning
        policy.set_frozen_stages(policy.num_stages - min(self.unfrozen, policy.num_stages))
        pl_module.train(pl_module.training)  # newly unfrozen batch norms back into training mode

    def on_fit_start(self, trainer, pl_module) -> None:
        self._unfreeze(pl_module)  # a resumed run: the restored count, before any step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        scheduled = trainer.current_epoch // self.every
        self.unfrozen = min(max(self.unfrozen, scheduled), pl_module.finetuning.num_stages)
        self._unfreeze(pl_module)


class FrozenOutputs:
    """The outputs of a model's lowest ``stages`` frozen backbone stages, while a fit computes them once.

    The training batches hold those outputs instead of images (:mod:`zoo.callbacks.frozen` puts them in
    the place of the training split's images); validation batches stay images, for the callbacks that look at them, and their
    frozen outputs are kept here, batch by batch in the order of the (unshuffled) validation loader.
    A kept batch is used only when the images are the same as the ones it was computed from, so a
    different validation loader (a sanity check's first batches, ``limit_val_batches``) is computed afresh.

    Args:
        stages: how many of the lowest backbone stages the outputs are of.
        front: what computes them from a batch of the model's inputs.
    """

    def __init__(self, stages: int, front: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.stages, self.front = stages, front
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (images, outputs) per validation batch
        self.position = 0  # the next validation batch
        self.active = False  # True during a validation step: see SupervisedModule.forward

    def start_validation(self) -> None:
        self.position = 0

    def validation_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen outputs for the next validation batch ``x``: the kept ones if ``x`` is the batch they
        were computed from, else computed (and kept)."""
        index, self.position = self.position, self.position + 1
        if index < len(self.kept):
            images, outputs = self.kept[index]
            if images.shape == x.shape and images.device == x.device and torch.equal(images, x):
                return outputs
        outputs = self.front(x)
        if index < len(self.kept):
            self.kept[index] = (x, outputs)
        else:
            self.kept.append((x, outputs))
        return outputs
