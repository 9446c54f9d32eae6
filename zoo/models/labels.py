"""Class labels for class-conditional generative models (the conditional GAN and VAE).

A user names the classes to draw as ints or class names; :func:`class_labels` turns either into class
indices and says clearly what was wrong otherwise. Unconditional models refuse labels through it, so
every ``sample(n, labels=None, generator=None)`` answers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_class_names(num_classes: int | None, class_names: Sequence[str] | None) -> None:
    """Refuse a ``num_classes`` below 2, and class names that do not name each class."""
    if num_classes is not None and not num_classes >= 2:
        raise ValueError(f"num_classes must be >= 2 (or None for an unconditional model), got {num_classes}")
    if class_names is not None and (num_classes is None or len(class_names) != num_classes):
        raise ValueError(f"class_names must name each of the num_classes={num_classes} classes, got {list(class_names)}")


def class_labels(labels, n: int, num_classes: int | None, class_names: Sequence[str] | None, model: str) -> torch.Tensor | None:
    """The class index of each of ``n`` samples, (n,) long, from what a user passed as ``labels``.

    ``labels`` is None, one class (an int or a class name) for all ``n``, or a sequence/tensor of
    ``n`` of them. A conditional model given None cycles through its classes (0, 1, ..., 0, 1, ...),
    so every class gets an equal share; an unconditional model (``num_classes`` None) refuses labels.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"{model} is unconditional: it draws images without labels (a class-conditional "
                             "model, trained with num_classes=..., chooses the class of each image)")
        return None
    if labels is None:
        return torch.arange(n) % num_classes
    if isinstance(labels, (int, str)) or (isinstance(labels, torch.Tensor) and labels.ndim == 0):
        labels = [labels.item() if isinstance(labels, torch.Tensor) else labels] * n
    values = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if len(values) != n:
        raise ValueError(f"labels must give one class per sample: {n} samples, {len(values)} labels")
    names = [str(name) for name in class_names] if class_names is not None else []
    indices = []
    for value in values:
        if isinstance(value, str) and value in names:
            value = names.index(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
            known = f"an int in [0, {num_classes - 1}]" + (f" or one of the class names {names}" if names else "")
            raise ValueError(f"label {value!r} is not a class of {model}: use {known}")
        indices.append(value)
    return torch.tensor(indices, dtype=torch.long)


def check_labels(labels: torch.Tensor | None, n: int, num_classes: int | None, model: str,
                 call: str) -> torch.Tensor | None:
    """The ``labels`` (n,) a forward pass was given, checked: required by a conditional model, refused
    by an unconditional one. ``model`` and ``call`` name them in the error ("this GAN", "model(z, labels)")."""
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"{model} is unconditional: call it without labels")
        return None
    if labels is None:
        raise ValueError(f"{model} is conditional: pass the class of each sample, e.g. {call} with labels of "
                         f"shape ({n},) in [0, {num_classes - 1}]")
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"labels must be {n} class indices (a ({n},) integer tensor), got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    if n and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    return labels


def label_kwargs(model, labels: torch.Tensor | None) -> dict:
    """The keyword arguments that give a class-conditional model the images' ``labels`` (``model(x,
    **label_kwargs(model, y))``); none for an unconditional model, which takes no labels."""
    if model.hparams.get("num_classes") is None:
        return {}
    return {"labels": None if labels is None else labels.to(model.device)}  # None: the model says what it needs


def batch_labels(model, batch) -> torch.Tensor | None:
    """The labels of a class-conditional model's batch ``(images, labels)``, checked; None for an
    unconditional model.

    Checked as :meth:`zoo.models.base.ZooModule.validate_input` checks images: every evaluation batch,
    and the first training batch of each epoch (the range check reads values, a device sync), so call
    it before ``validate_input`` marks the epoch's input checked.
    """
    num_classes = model.hparams.get("num_classes")
    if num_classes is None:
        return None
    name = type(model).__name__
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(f"{name} is class-conditional: it trains on (images, labels) batches, got images only")
    images, labels = batch[0], batch[1]
    if not model.input_check_due():
        return labels
    return check_labels(labels, len(images), num_classes, f"this {name}", "the batch (images, labels)")
