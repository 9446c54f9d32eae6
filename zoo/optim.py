"""Optimizers and learning-rate schedules chosen by name; shared by every model family."""

from __future__ import annotations

from collections.abc import Iterable

import torch

# name -> (optimiser class, whether it takes ``momentum``)
_OPTIMIZER_CLASSES: dict[str, tuple[type[torch.optim.Optimizer], bool]] = {
    "sgd": (torch.optim.SGD, False),
    "sgd_momentum": (torch.optim.SGD, True),
    "adam": (torch.optim.Adam, False),
    "adamw": (torch.optim.AdamW, False),
    "rmsprop": (torch.optim.RMSprop, True),
    "adagrad": (torch.optim.Adagrad, False),
}
OPTIMIZERS = tuple(_OPTIMIZER_CLASSES)
SCHEDULERS = ("none", "cosine", "onecycle", "step")


def check_optim_args(optimizer: str, lr: float, weight_decay: float, momentum: float, scheduler: str) -> None:
    """Refuse bad optimisation settings up front, naming the field."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | list[dict],
    optimizer: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build an optimizer by name. ``weight_decay`` is the L2 penalty (decoupled for adamw)."""
    if optimizer not in _OPTIMIZER_CLASSES:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    optimizer_class, takes_momentum = _OPTIMIZER_CLASSES[optimizer]
    extra = {"momentum": momentum} if takes_momentum else {}
    return optimizer_class(params, lr=lr, weight_decay=weight_decay, **extra)


def build_scheduler(optimizer: torch.optim.Optimizer, scheduler: str, total_steps: int) -> dict | None:
    """A Lightning ``lr_scheduler`` config stepped every batch, or None for a constant rate.

    ``cosine`` anneals to zero over the run, ``onecycle`` warms up for 30% then anneals (Smith &
    Topin 2017), ``step`` divides the rate by 10 at 50% and 75% of the run.
    """
    if scheduler == "none":
        return None
    total_steps = max(int(total_steps), 1)
    if scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    elif scheduler == "onecycle":
        max_lrs = [group["lr"] for group in optimizer.param_groups]
        group = optimizer.param_groups[0]
        # Cycling momentum would turn plain SGD into momentum SGD; only cycle what the optimiser uses.
        cycle_momentum = "betas" in group or group.get("momentum", 0) > 0
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lrs, total_steps=total_steps, cycle_momentum=cycle_momentum
        )
    elif scheduler == "step":
        milestones = [total_steps // 2, (3 * total_steps) // 4]
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    else:
        raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
    return {"scheduler": sched, "interval": "step"}
