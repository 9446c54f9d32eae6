"""Evaluation reports: ``zoo evaluate WEIGHTS --report DIR``.

A report re-measures weights on their test split and writes, into ``DIR``:

- ``metrics.json``: the test metrics (the keys ``trainer.test`` logs, as in the manifest); for a
  classifier also per-class precision, recall, F1 and support, top-k accuracy and the confusion
  matrix ``[true][predicted]``; and the weights' provenance (sha256, recipe, seed, versions);
- pictures: for a classifier ``confusion_matrix.png`` and ``misclassified.png`` (the test images it
  got wrong with the most confidence), for an autoencoder ``reconstructions.png``, for a VAE or a
  GAN ``samples.png`` (seeded: the same command draws the same picture);
- ``index.html``: one self-contained page with all of it (the pictures embedded).

What a report shows is what the model says it does (:class:`~zoo.models.base.ZooModule`): a
model that gives classes gets the classification measures, one that maps images to images its
reconstructions, one that can sample its samples. This module measures; :mod:`zoo.report_page`
draws the pictures and writes the page. The numbers come from torchmetrics; ``tests/test_report.py``
checks them against scikit-learn's.
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo.report_page import Picture, confusion_picture, draw, grid_picture, misclassified_picture, page

PICTURE_SEED = 0  # samples.png is drawn from this seed
MISCLASSIFIED_SHOWN = 24
RECONSTRUCTIONS_SHOWN = 32
SAMPLES_SHOWN = 64
TOP_K = (1, 3, 5)


class ReportError(UsageError):
    """A report cannot be made; the message says what was missing and what to pass."""


def write_report(
    weights: str | Path,
    directory: str | Path,
    config: str | Path | None = None,
    data_dir: str | None = None,
    accelerator: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``weights`` on their test split and write a report into ``directory``.

    Args:
        weights: a shipped name (see ``zoo list``), a ``save_pretrained`` folder, or a Lightning
            checkpoint (``.ckpt``) of one's own, written by ``zoo fit``.
        directory: the report's folder (created; files already in it are replaced).
        config: a recipe (``zoo fit --config`` file) whose ``data`` section names the test data (and
            for a checkpoint the ``model`` class): needed for a ``save_pretrained`` folder; for shipped
            weights and ``zoo fit`` checkpoints it replaces what they record.
        data_dir: the data root (default: ``$ZOO_DATA_DIR``).
        accelerator: Lightning's accelerator for the test run.
        progress: show a progress bar (on stderr) while predicting.

    Returns:
        What ``metrics.json`` holds.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ReportError(f"--report {directory} is a file: name a folder for the report")
    model, datamodule, provenance = _load(weights, config, data_dir)
    numbers, pictures = measure(model, datamodule, accelerator, progress)
    directory.mkdir(parents=True, exist_ok=True)
    report = {"weights": str(weights), "class_path": provenance.pop("class_path"), **numbers,
              "pictures": draw(pictures, directory), "provenance": provenance}
    (directory / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    (directory / "index.html").write_text(page(report, directory))
    return report


def measure(model, datamodule, accelerator: str = "auto", progress: bool = False) -> tuple[dict[str, Any], list[Picture]]:
    """What a report shows of ``model`` (in eval mode) on ``datamodule``'s test split: the numbers, and the
    pictures still to draw. Every model gets its test metrics; the rest follows what the model says it does."""
    from zoo.evaluate import measure_test_metrics

    numbers: dict[str, Any] = {"metrics": measure_test_metrics(model, datamodule, accelerator)}
    pictures: list[Picture] = []
    if model.gives == "classes":
        numbers.update(_classification(model, datamodule, pictures, progress))
    elif model.takes == model.gives == "images":
        pictures.append(_reconstructions(model, datamodule))
    if model.can_sample:
        pictures.append(_samples(model))
    return numbers, pictures


# ----- what is evaluated ---------------------------------------------------------------------------

def _load(weights: str | Path, config: str | Path | None, data_dir: str | None):
    """(model in eval mode, its test DataModule, provenance) for shipped weights, a folder or a checkpoint."""
    import lightning
    import torch

    import zoo
    from zoo.evaluate import datamodule_for
    from zoo.names import did_you_mean
    from zoo.weights import WeightsError, class_path_of, load_pretrained, read_manifest, sha256_of

    manifest = read_manifest()
    path = Path(weights)
    evaluated_with = {"zoo": zoo.__version__, "torch": torch.__version__, "lightning": lightning.__version__}
    provenance: dict[str, Any] = {"evaluated_with": evaluated_with,
                                  "date": datetime.date.today().isoformat()}
    if str(weights) in manifest and not path.exists():
        entry = manifest[str(weights)]
        model = load_pretrained(str(weights))
        datamodule = _datamodule_from(config, data_dir) if config else datamodule_for(str(weights), data_dir=data_dir)
        provenance.update({key: entry.get(key) for key in ("sha256", "recipe", "seed", "trained_with", "dataset")})
        provenance["datamodule"] = entry.get("datamodule")
    elif path.is_dir():
        if config is None:
            raise ReportError(f"{weights} holds no test data: pass the recipe it was trained with, --config RECIPE.yaml "
                              "(its data section says which data to test on)")
        model = load_pretrained(path)
        datamodule = _datamodule_from(config, data_dir)
        provenance.update(sha256=json.loads((path / "config.json").read_text()).get("sha256"), recipe=f"--config {config}")
    elif path.suffix == ".ckpt":
        model, datamodule = _from_checkpoint(path, config, data_dir)
        provenance.update(sha256=sha256_of(path), recipe=f"--config {config}" if config else None)
    else:
        known = ", ".join(sorted(manifest)) or "none"
        raise WeightsError(f"{weights}: no shipped weights of that name, no such folder or .ckpt file."
                           f"{did_you_mean(str(weights), manifest)} Shipped: {known}")
    provenance["class_path"] = class_path_of(model)
    return model.eval(), datamodule, provenance


def _recipe(config: str | Path) -> dict[str, Any]:
    import yaml

    from zoo.names import did_you_mean
    from zoo.recipes import list_recipes, recipe_path

    path = Path(config)
    if not path.is_file() and Path(config).stem in list_recipes() and Path(config).name == str(config):
        path = recipe_path(str(config))  # a shipped recipe by name
    if not path.is_file():
        raise ReportError(f"--config {config}: no such recipe file, nor a shipped recipe of that name."
                          f"{did_you_mean(Path(config).stem, list_recipes())} `zoo recipes` lists the shipped ones")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ReportError(f"--config {config} is not valid YAML: {err}") from err
    if not isinstance(recipe, dict):
        raise ReportError(f"--config {config} is not a recipe (a YAML mapping with model and data sections)")
    return recipe


def _registered(class_path: str, classes: dict[str, type], what: str, source: str) -> type:
    from zoo.registry import class_by_path

    cls = class_by_path(class_path, classes)
    if cls is None:
        raise ReportError(f"{source}: {what} class {class_path!r} is not a zoo {what}")
    return cls


def _section(config: str | Path, what: str) -> tuple[str, dict[str, Any]]:
    """(class_path, init_args) of a recipe's ``model`` or ``data`` section."""
    section = _recipe(config).get(what)
    if not isinstance(section, dict) or "class_path" not in section:
        raise ReportError(f"--config {config} has no {what} section with a class_path")
    return section["class_path"], dict(section.get("init_args") or {})


def _datamodule_from(config: str | Path, data_dir: str | None):
    class_path, init_args = _section(config, "data")
    return _datamodule(class_path, init_args, data_dir, f"--config {config}")


def _datamodule(class_path: str, init_args: dict[str, Any], data_dir: str | None, source: str):
    from zoo.registry import datamodule_classes

    cls = _registered(class_path, datamodule_classes(), "data", source)
    if data_dir is not None:
        init_args = {**init_args, "data_dir": data_dir}
    return cls(**init_args)


def _from_checkpoint(path: Path, config: str | Path | None, data_dir: str | None):
    """(model, test DataModule) of a ``zoo fit`` checkpoint: the classes and the data's settings come from
    the checkpoint (``zoo fit`` records both), or from ``config`` when given. Nothing is unpickled."""
    from zoo.checkpointing import check_checkpoint_file, model_from_checkpoint
    from zoo.registry import model_classes

    checkpoint = check_checkpoint_file(str(path), flag="")
    if config is not None:
        model_path = _section(config, "model")[0]
        data_path, data_args = _section(config, "data")
    else:
        model_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
        saved = checkpoint.get("datamodule_hyper_parameters") or {}
        data_path = saved.get("_class_path")
        data_args = {key: value for key, value in saved.items() if not key.startswith("_")}
        if model_path is None or data_path is None:
            raise ReportError(f"{path} does not record its model and data classes (it was not written by zoo fit): "
                              "pass the recipe it was trained with, --config RECIPE.yaml")
    _registered(model_path, model_classes(), "model", str(path))  # a clear error before the weights are read
    return model_from_checkpoint(path, model_path), _datamodule(data_path, data_args, data_dir, str(path))


# ----- classifiers ---------------------------------------------------------------------------------

def _classification(model, datamodule, pictures: list[Picture], progress: bool) -> dict[str, Any]:
    """Per-class precision, recall and F1, top-k accuracy, the confusion matrix and the most confident
    errors; adds their pictures to ``pictures``."""
    import torch
    from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_confusion_matrix,
                                                        multiclass_f1_score, multiclass_precision, multiclass_recall)

    datamodule.setup("test")
    probs, target, x = class_probabilities(model, datamodule.test_dataloader(), progress, keep_images=True)
    n = probs.shape[1]
    names = list(model.class_names or [str(i) for i in range(n)])
    preds = probs.argmax(1)
    per_class = {
        "precision": multiclass_precision(preds, target, n, average="none", zero_division=0),
        "recall": multiclass_recall(preds, target, n, average="none", zero_division=0),
        "f1": multiclass_f1_score(preds, target, n, average="none", zero_division=0),
    }
    support = torch.bincount(target, minlength=n)
    matrix = multiclass_confusion_matrix(preds, target, n)  # [true][predicted]
    top_k = {str(k): float(multiclass_accuracy(probs, target, n, top_k=k, average="micro")) for k in TOP_K if k <= n}
    wrong = (preds != target).nonzero().view(-1)
    confident = wrong[probs[wrong, preds[wrong]].argsort(descending=True)][:MISCLASSIFIED_SHOWN]
    errors = [{"index": int(i), "true": names[target[i]], "predicted": names[preds[i]],
               "probability": round(float(probs[i, preds[i]]), 4)} for i in confident]
    pictures.append(Picture("confusion_matrix.png", "confusion matrix: rows are the true classes, columns the predicted ones",
                            functools.partial(confusion_picture, matrix, names)))
    if errors and model.takes == "images":  # a table's rows make no picture
        pictures.append(Picture("misclassified.png", f"the {len(errors)} test images misclassified with the most confidence",
                                functools.partial(misclassified_picture, x[confident], errors)))
    return {
        "class_names": names,
        "test_images": int(len(target)),  # the test samples, whatever they are (test_unit)
        "test_unit": "rows" if model.takes == "features" else model.takes,
        "per_class": [{"class": name, **{key: round(float(v[i]), 6) for key, v in per_class.items()},
                       "support": int(support[i])} for i, name in enumerate(names)],
        "top_k_accuracy": top_k,
        "confusion_matrix": matrix.tolist(),
        "most_confident_errors": errors,
    }


def class_probabilities(model, loader, progress: bool = False, keep_images: bool = False):
    """A classifier's class probabilities for every batch of ``loader``: ``(probabilities (N, C), targets (N,),
    images or None)``; a binary classifier's single logit becomes two probabilities."""
    import torch

    from zoo.progress import progress_bar

    probabilities, targets, images = [], [], []
    with progress_bar(progress, len(loader), "testing") as advance, torch.inference_mode():
        for x, y in loader:
            logits = model(x.to(model.device)).float().cpu()
            if logits.shape[1] == 1:  # binary: one logit, the probability of the second class
                p = torch.sigmoid(logits[:, 0])
                logits = torch.stack([1 - p, p], dim=1).log()
            probabilities.append(logits.softmax(1))
            targets.append(y.long().view(-1))
            if keep_images:
                images.append(x.cpu())
            advance(1)
    return torch.cat(probabilities), torch.cat(targets), torch.cat(images) if keep_images else None


def confusion_matrix(model, loader) -> tuple[list[list[int]], list[str]]:
    """A classifier's confusion matrix ``[true][predicted]`` on ``loader``, and its class names."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    probs, target, _ = class_probabilities(model, loader)
    n = probs.shape[1]
    names = list(model.class_names or [str(i) for i in range(n)])
    return multiclass_confusion_matrix(probs.argmax(1), target, n).tolist(), names


# ----- generative models ---------------------------------------------------------------------------

def _reconstructions(model, datamodule) -> Picture:
    """The first test images, each followed by its reconstruction."""
    import torch

    from zoo.drawing import pair_grid
    from zoo.models.labels import label_kwargs

    datamodule.setup("test")
    x, labels = (t[:RECONSTRUCTIONS_SHOWN] for t in next(iter(datamodule.test_dataloader()))[:2])
    with torch.inference_mode():  # a class-conditional model reconstructs each image given its label
        y = model(x.to(model.device), **label_kwargs(model, labels)).cpu()
    return Picture("reconstructions.png", f"the first {len(x)} test images, each followed by its reconstruction",
                   functools.partial(grid_picture, pair_grid(x, y)))


def _samples(model) -> Picture:
    """Seeded samples: the same command draws the same picture; one row per class for a conditional model."""
    import torch

    from zoo.callbacks.images import class_grid
    from zoo.drawing import image_grid

    generator = torch.Generator().manual_seed(PICTURE_SEED)
    if model.condition_classes is not None:
        per_class = 10
        grid = image_grid(class_grid(model, per_class, generator), nrow=per_class)
        caption = f"{per_class} generated images of each class, one row per class (seed {PICTURE_SEED})"
    else:
        grid = image_grid(model.sample(SAMPLES_SHOWN, generator=generator))
        caption = f"{SAMPLES_SHOWN} generated images (seed {PICTURE_SEED})"
    return Picture("samples.png", caption, functools.partial(grid_picture, grid))
