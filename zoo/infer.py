"""Predict classes of image files: ``zoo infer WEIGHTS IMAGES...`` and :func:`predict_files`.

An image becomes what the weights expect by the code the image-folder DataModule uses
(:func:`zoo.data.folder.read_image`): converted to the model's channels (grayscale or RGB), its
shorter side resized to the model's input size, centre-cropped to a square, then scaled to [0, 1].
The model normalises its inputs itself, so nothing else is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.data.folder import IMAGE_EXTENSIONS, ImageFolderError


class InferenceError(ValueError):
    """Images cannot be predicted on; the message names the file or folder and what to do."""


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """The image files named, and those in the folders named (searched recursively, sorted), in order."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InferenceError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InferenceError(f"{path}: no such file or folder")
    if not files:
        raise InferenceError("no images given: name image files or folders of images")
    return files


def _image_size(model) -> tuple[int, int]:
    """(channels, side) of the square images ``model`` takes."""
    shape = tuple(getattr(model, "input_shape", ()))
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
        raise InferenceError(f"{type(model).__name__} takes inputs of shape {shape}, not square grayscale or RGB "
                             "images: zoo infer predicts with image classifiers")
    return shape[0], shape[1]


def predict_files(
    weights: Any,
    paths: Iterable[str | Path],
    top_k: int = 5,
    batch_size: int = 256,
    skip_bad: bool = False,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Class predictions for image files.

    Args:
        weights: a classifier of the zoo, or what :func:`zoo.load_pretrained` takes (a shipped name
            or a ``save_pretrained`` folder).
        paths: image files and folders of images (searched recursively).
        top_k: how many of the most probable classes each row lists.
        batch_size: images per forward pass.
        skip_bad: report unreadable images and go on, instead of stopping at the first.
        progress: show a progress bar on the terminal.

    Returns:
        One row per image (``path``, ``class``, ``probability`` and ``top_k``, a list of
        ``(class name, probability)``, most probable first), and the ``(path, reason)`` of each
        image skipped (only with ``skip_bad``).
    """
    import torch

    from zoo.data.folder import read_image
    from zoo.models.supervised import SupervisedModule
    from zoo.weights import load_pretrained

    model = weights if isinstance(weights, torch.nn.Module) else load_pretrained(weights)
    if not isinstance(model, SupervisedModule) or model.task == "regression":
        raise InferenceError(f"zoo infer predicts classes: {type(model).__name__} is not a classifier")
    if top_k < 1:
        raise InferenceError(f"top_k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    channels, side = _image_size(model)
    names = _class_names(model)
    files = image_files(paths)
    model.eval()
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[Path, str]] = []
    with _progress(progress, len(files)) as advance, torch.inference_mode():
        for start in range(0, len(files), batch_size):
            batch_files, images = [], []
            for path in files[start : start + batch_size]:
                try:
                    images.append(read_image(path, channels, side))
                except ImageFolderError as err:
                    if not skip_bad:
                        raise InferenceError(f"{err} (or pass --skip_bad to report it and go on)") from err
                    skipped.append((path, str(err)))
                    continue
                batch_files.append(path)
            if images:
                x = torch.stack(images).float().div_(255)  # (B, C, S, S) in [0, 1]
                rows += _rows(model(x), batch_files, names, top_k)
            advance(len(files[start : start + batch_size]))
    return rows, skipped


def _class_names(model) -> list[str]:
    if model.class_names is not None:
        return list(model.class_names)
    return [str(i) for i in range(2 if model.task == "binary" else model.num_outputs)]


def _rows(logits, files: Sequence[Path], names: list[str], top_k: int) -> list[dict[str, Any]]:
    import torch

    if logits.shape[1] == 1:  # binary: one logit, the probability of class 1
        p = torch.sigmoid(logits[:, 0])
        probabilities = torch.stack([1 - p, p], dim=1)
    else:
        probabilities = logits.float().softmax(dim=1)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    rows = []
    for path, top_values, top_indices in zip(files, values.tolist(), indices.tolist()):
        top = [(names[i], v) for i, v in zip(top_indices, top_values)]
        rows.append({"path": str(path), "class": top[0][0], "probability": top[0][1], "top_k": top})
    return rows


class _progress:
    """A rich progress bar over the images when ``enabled``, else nothing; yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("predicting", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_rows(rows: list[dict[str, Any]], output: Path) -> None:
    """Write ``rows`` as CSV (``.csv``: path, class, probability, then each top-k name and probability)
    or JSON (``.json``: a list of the rows)."""
    import csv
    import json

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InferenceError(f"--output {output}: name a .csv or .json file")
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        records = [{**row, "top_k": [{"class": n, "probability": p} for n, p in row["top_k"]]} for row in rows]
        output.write_text(json.dumps(records, indent=1) + "\n")
        return
    k = max((len(row["top_k"]) for row in rows), default=0)
    header = ["path", "class", "probability"] + [f"top{i}_{field}" for i in range(1, k + 1) for field in ("class", "probability")]
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row["path"], row["class"], f"{row['probability']:.6g}"]
                            + [x for n, p in row["top_k"] for x in (n, f"{p:.6g}")])


def format_table(rows: list[dict[str, Any]], limit: int = 20) -> str:
    """The first ``limit`` rows as a short text table: path, class, probability, the next classes."""
    lines = []
    width = max([len("image"), *(len(row["path"]) for row in rows[:limit])])
    lines.append(f"{'image':<{width}}  {'class':<12} {'prob':>6}  next")
    for row in rows[:limit]:
        others = ", ".join(f"{n} {p:.2g}" for n, p in row["top_k"][1:3])
        lines.append(f"{row['path']:<{width}}  {row['class']:<12} {row['probability']:>6.4f}  {others}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more (write them all with --output preds.csv)")
    return "\n".join(lines)
