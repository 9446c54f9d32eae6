"""Evaluation reports: ``zoo evaluate WEIGHTS --report DIR``.

A report re-measures weights on their test split and writes, into ``DIR``:

- ``metrics.json``: the test metrics (the keys ``trainer.test`` logs, as in the manifest); for a
  classifier also per-class precision, recall, F1 and support, top-k accuracy and the confusion
  matrix ``[true][predicted]``; and the weights' provenance (sha256, recipe, seed, versions);
- pictures: for a classifier ``confusion_matrix.png`` and ``misclassified.png`` (the test images it
  got wrong with the most confidence), for an autoencoder ``reconstructions.png``, for a VAE or a
  GAN ``samples.png`` (seeded: the same command draws the same picture);
- ``index.html``: one self-contained page with all of it (the pictures embedded).

The numbers come from torchmetrics; ``tests/test_report.py`` checks them against scikit-learn's.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from pathlib import Path
from typing import Any

PICTURE_SEED = 0  # samples.png is drawn from this seed
MISCLASSIFIED_SHOWN = 24
RECONSTRUCTIONS_SHOWN = 32
SAMPLES_SHOWN = 64
TOP_K = (1, 3, 5)


class ReportError(ValueError):
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
    from zoo.evaluate import measure_test_metrics
    from zoo.models.reconstruction import ReconstructionModule
    from zoo.models.supervised import SupervisedModule

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ReportError(f"--report {directory} is a file: name a folder for the report")
    model, datamodule, provenance = _load(weights, config, data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"weights": str(weights), "class_path": provenance.pop("class_path"),
                              "metrics": measure_test_metrics(model, datamodule, accelerator)}
    pictures: dict[str, str] = {}
    if isinstance(model, SupervisedModule) and model.task != "regression":
        report.update(_classification(model, datamodule, directory, pictures, progress))
    elif isinstance(model, ReconstructionModule):
        _reconstructions(model, datamodule, directory, pictures)
    if hasattr(model, "sample"):
        _samples(model, directory, pictures)
    report["pictures"] = pictures
    report["provenance"] = provenance
    (directory / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    (directory / "index.html").write_text(_page(report, directory))
    return report


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
    """The registered class named by its full path or as its package exports it (``zoo.models.LeNet5``
    for ``zoo.models.lenet.LeNet5``, as recipes and checkpoints name them)."""
    for path, cls in classes.items():
        if class_path in (path, f"{path.rsplit('.', 2)[0]}.{cls.__qualname__}"):
            return cls
    raise ReportError(f"{source}: {what} class {class_path!r} is not a zoo {what}")


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
    from zoo.registry import model_classes
    from zoo.trainer_cli import UsageError, check_checkpoint_file

    if not path.is_file():
        raise ReportError(f"{path}: no such checkpoint file")
    try:
        checkpoint = check_checkpoint_file(str(path))
    except UsageError as err:
        raise ReportError(str(err).replace("--ckpt_path ", "", 1)) from err
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
    cls = _registered(model_path, model_classes(), "model", str(path))
    model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    return model, _datamodule(data_path, data_args, data_dir, str(path))


# ----- classifiers ---------------------------------------------------------------------------------

def _classification(model, datamodule, directory: Path, pictures: dict[str, str], progress: bool) -> dict[str, Any]:
    import torch
    from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_confusion_matrix,
                                                        multiclass_f1_score, multiclass_precision, multiclass_recall)

    from zoo.infer import progress_bar

    datamodule.setup("test")
    loader = datamodule.test_dataloader()
    probabilities, targets, images = [], [], []
    with progress_bar(progress, len(loader), "testing") as advance, torch.inference_mode():
        for x, y in loader:
            logits = model(x.to(model.device)).float().cpu()
            if logits.shape[1] == 1:  # binary: one logit, the probability of the second class
                p = torch.sigmoid(logits[:, 0])
                logits = torch.stack([1 - p, p], dim=1).log()
            probabilities.append(logits.softmax(1))
            targets.append(y.long().view(-1))
            images.append(x.cpu())
            advance(1)
    probs, target, x = torch.cat(probabilities), torch.cat(targets), torch.cat(images)
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
    _confusion_picture(matrix, names, directory / "confusion_matrix.png")
    pictures["confusion_matrix.png"] = "confusion matrix: rows are the true classes, columns the predicted ones"
    if errors:
        _misclassified_picture(x[confident], errors, directory / "misclassified.png")
        pictures["misclassified.png"] = f"the {len(errors)} test images misclassified with the most confidence"
    return {
        "class_names": names,
        "test_images": int(len(target)),
        "per_class": [{"class": name, **{key: round(float(v[i]), 6) for key, v in per_class.items()},
                       "support": int(support[i])} for i, name in enumerate(names)],
        "top_k_accuracy": top_k,
        "confusion_matrix": matrix.tolist(),
        "most_confident_errors": errors,
    }


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height), dpi=100)


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def _confusion_picture(matrix, names: list[str], path: Path) -> None:
    from torchmetrics.classification import MulticlassConfusionMatrix

    side = max(5.0, 0.6 * len(names) + 2)
    figure = _figure(side, side)
    axes = figure.add_subplot()
    MulticlassConfusionMatrix(num_classes=len(names)).plot(val=matrix, ax=axes, labels=names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.tick_params(axis="x", labelrotation=45 if max(map(len, names)) > 3 else 0)
    _save(figure, path)


def _misclassified_picture(images, errors: list[dict[str, Any]], path: Path) -> None:
    columns = 6
    rows = -(-len(errors) // columns)
    figure = _figure(1.7 * columns, 2.0 * rows)
    for i, (image, error) in enumerate(zip(images, errors)):
        axes = figure.add_subplot(rows, columns, i + 1)
        picture = image.clamp(0, 1)
        axes.imshow(picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        axes.set_title(f"true {error['true']}\nread {error['predicted']} {error['probability']:.2f}", fontsize=8)
        axes.axis("off")
    _save(figure, path)


# ----- generative models ---------------------------------------------------------------------------

def _reconstructions(model, datamodule, directory: Path, pictures: dict[str, str]) -> None:
    import torch

    from zoo.drawing import pair_grid
    from zoo.infer import save_png

    from zoo.models.labels import label_kwargs

    datamodule.setup("test")
    x, labels = (t[:RECONSTRUCTIONS_SHOWN] for t in next(iter(datamodule.test_dataloader()))[:2])
    with torch.inference_mode():  # a class-conditional model reconstructs each image given its label
        y = model(x.to(model.device), **label_kwargs(model, labels)).cpu()
    save_png(_enlarged(pair_grid(x, y)), directory / "reconstructions.png")
    pictures["reconstructions.png"] = f"the first {len(x)} test images, each followed by its reconstruction"


def _samples(model, directory: Path, pictures: dict[str, str]) -> None:
    import torch

    from zoo.drawing import image_grid
    from zoo.infer import save_png

    from zoo.callbacks.images import class_grid

    generator = torch.Generator().manual_seed(PICTURE_SEED)
    num_classes = model.hparams.get("num_classes")
    if num_classes is not None:  # a class-conditional model: one row per class
        per_class = 10
        grid = image_grid(class_grid(model, per_class, generator), nrow=per_class)
        caption = f"{per_class} generated images of each class, one row per class (seed {PICTURE_SEED})"
    else:
        grid = image_grid(model.sample(SAMPLES_SHOWN, generator=generator))
        caption = f"{SAMPLES_SHOWN} generated images (seed {PICTURE_SEED})"
    save_png(_enlarged(grid), directory / "samples.png")
    pictures["samples.png"] = caption


def _enlarged(grid, factor: int = 2):
    """A grid of 28-pixel images is small on a screen: each pixel becomes ``factor`` x ``factor``."""
    return grid.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


# ----- the page ------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; } img { max-width: 100%; border: 1px solid #eee; }
code { background: #f3f3f3; padding: 0 0.25em; border-radius: 3px; }
"""


def _page(report: dict[str, Any], directory: Path) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(report['weights'])} · report</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{e(report['weights'])}</h1><p><code>{e(report['class_path'])}</code>, evaluated on the test split"
             + (f" ({report['test_images']:,} images)" if "test_images" in report else "") + ".</p>",
             "<h2>Metrics</h2>", _table(["metric", "value"], [[k, _number(v)] for k, v in sorted(report["metrics"].items())])]
    if "top_k_accuracy" in report:
        parts.append(_table(["top-k", "accuracy"], [[f"top-{k}", f"{100 * v:.2f} %"] for k, v in report["top_k_accuracy"].items()]))
    if "per_class" in report:
        parts += ["<h2>Per class</h2>", _table(
            ["class", "precision", "recall", "F1", "test images"],
            [[r["class"], f"{100 * r['precision']:.2f} %", f"{100 * r['recall']:.2f} %", f"{100 * r['f1']:.2f} %",
              f"{r['support']:,}"] for r in report["per_class"]])]
    if report["pictures"]:
        parts.append("<h2>Pictures</h2>")
    for file, caption in report["pictures"].items():
        data = base64.b64encode((directory / file).read_bytes()).decode()
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{e(caption)}'>"
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    provenance = [[key, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
                  for key, value in report["provenance"].items() if value is not None]
    parts += ["<h2>Provenance</h2>", _table(["", ""], provenance, header=False, numeric=False), "</body></html>\n"]
    return "\n".join(parts)


def _table(columns: list[str], rows: list[list[str]], header: bool = True, numeric: bool = True) -> str:
    """An HTML table; with ``numeric`` every column after the first is right-aligned."""
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>" if header else ""
    cell = "<td class='n'>" if numeric else "<td>"
    body = "".join("<tr><td>" + e(row[0]) + "</td>" + "".join(f"{cell}{e(v)}</td>" for v in row[1:]) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _number(value: float) -> str:
    return f"{value:.6g}"
