"""Predictions on image files: ``zoo infer WEIGHTS IMAGES...`` (:func:`predict_files` for classifiers,
:func:`reconstruct_files` for autoencoders) and generated images: ``zoo sample`` (:func:`sample_files`).

An image becomes what the weights expect by the code the image-folder DataModule uses
(:func:`zoo.data.folder.read_image`), as the weights' input contract says (``input_framing``, see
:mod:`zoo.data.framing`). Weights trained on MNIST expect a light digit on black, fitted into a
20x20 box and centred by mass in 28x28: an image file is brought into that format (inverted if it
is dark on light, cropped to its content, fitted and centred). Weights that record no framing, or
``preprocess="plain"``, get the plain path: converted to the model's channels (grayscale or RGB),
the shorter side resized to the model's input size, centre-cropped to a square. Either way the
pixels are scaled to [0, 1]; the model normalises its inputs itself, so nothing else is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.data.folder import IMAGE_EXTENSIONS, ImageFolderError
from zoo.data.framing import AUTO, Framing, FramingError, chosen_framing, get_framing
from zoo.errors import UsageError
from zoo.progress import progress_bar


class InferenceError(UsageError):
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


def image_size_of(model) -> tuple[int, int]:
    """(channels, side) of the square images ``model`` takes."""
    shape = tuple(getattr(model, "input_shape", ()))
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
        raise InferenceError(f"{type(model).__name__} takes inputs of shape {shape}, not square grayscale or RGB "
                             "images: zoo infer predicts with image classifiers")
    return shape[0], shape[1]


def input_preprocessing(model, preprocess: str = AUTO) -> Framing | None:
    """The framing image files are brought into for ``model``, or None for the plain path.

    Args:
        model: a zoo model; a classifier's ``input_framing`` says how its training images were framed.
        preprocess: ``auto`` (what the weights say, where :mod:`zoo.data.framing` reproduces it),
            ``plain`` (resize and centre-crop only), or ``mnist`` for MNIST's framing whatever the
            weights say.
    """
    try:
        return chosen_framing(preprocess, getattr(model, "input_framing", None))
    except FramingError as err:
        raise InferenceError(str(err)) from None


def preprocessing_note(model, preprocess: str = AUTO) -> str | None:
    """One line for the terminal on what is done to image files for ``model``, or None if nothing is to say."""
    framing = input_preprocessing(model, preprocess)
    if framing is not None:
        return f"images framed as {framing.title} ({framing.summary}); --preprocess plain to turn off"
    expected = getattr(model, "input_framing", None)
    if expected is None:
        return None
    expected = get_framing(expected)
    if not expected.reproduced:
        return (f"images resized and centre-cropped as they are; the weights expect {expected.title}'s format "
                f"({expected.summary}), which zoo infer does not reproduce: give it images like that")
    return (f"images resized and centre-cropped as they are, although the weights expect {expected.title}'s framing "
            "(--preprocess auto brings them into it)")


def predict_files(
    weights: Any,
    paths: Iterable[str | Path],
    top_k: int = 5,
    batch_size: int = 256,
    skip_bad: bool = False,
    progress: bool = False,
    preprocess: str = AUTO,
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
        preprocess: ``auto``: images are framed as the weights' ``input_framing`` says (MNIST's
            weights: light on dark, 20x20 box, centred by mass), or read plainly if they say nothing;
            ``plain``: resized and centre-cropped only; ``mnist``: MNIST's framing whatever the weights say.

    Returns:
        One row per image (``path``, ``class``, ``probability`` and ``top_k``, a list of
        ``(class name, probability)``, most probable first), and the ``(path, reason)`` of each
        image skipped (only with ``skip_bad``).
    """
    model = _checked(weights, lambda m: m.gives == "classes", "zoo infer predicts classes with a classifier")
    if top_k < 1:
        raise InferenceError(f"top_k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    size = image_size_of(model)  # before any file is read
    framing = input_preprocessing(model, preprocess)
    files = image_files(paths)
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[Path, str]] = []
    for batch_files, x in _batches(model, size, framing, files, batch_size, skip_bad, skipped, progress):
        rows += top_classes(model, model(x), batch_files, top_k)
    return rows, skipped


def _batches(model, size: tuple[int, int], framing: Framing | None, files: list[Path], batch_size: int,
             skip_bad: bool, skipped: list, progress: bool):
    """(files, images (B, C, S, S) in [0, 1]) batches of ``size`` (C, S), framed by ``framing`` (None:
    plain), in inference mode; unreadable files go to ``skipped`` with ``skip_bad``, else stop with
    an error naming them."""
    import torch

    from zoo.data.folder import read_image

    channels, side = size
    model.eval()
    with progress_bar(progress, len(files)) as advance, torch.inference_mode():
        for start in range(0, len(files), batch_size):
            batch_files, images = [], []
            for path in files[start : start + batch_size]:
                try:
                    images.append(read_image(path, channels, side, framing))
                except ImageFolderError as err:
                    if not skip_bad:
                        raise InferenceError(f"{err} (or pass --skip_bad to report it and go on)") from err
                    skipped.append((path, str(err)))
                    continue
                batch_files.append(path)
            if images:
                yield batch_files, torch.stack(images).float().div_(255)
            advance(len(files[start : start + batch_size]))


def predict_table(weights: Any, source: Any, batch_size: int = 4096) -> tuple[list[dict[str, Any]], list[str]]:
    """Predictions for raw table rows by weights trained on a table (:mod:`zoo.data.tabular`).

    The rows get the preprocessing the weights carry (``input_table``): the training statistics,
    categories and target, so nothing has to be prepared by hand.

    Args:
        weights: a zoo model trained on a table, or what :func:`zoo.load_pretrained` takes.
        source: a CSV or Parquet file, or a pandas DataFrame, with the columns the model was trained on
            (more are ignored; an ``id`` column labels the rows).
        batch_size: rows per forward pass.

    Returns:
        One row per input row, in order: ``id`` (the ``id`` column's value, else the row's index), then
        ``class`` and ``probability`` for a classifier, or a value per target column for a regressor, in
        the target's own units; and the input columns the model does not use (ignored).
    """
    import torch

    from zoo.data.tabular import ID_COLUMN, check_columns, decode_output, encode_rows, read_table

    model = _checked(weights, lambda m: m.table_contract is not None,
                     "zoo infer on a table's rows needs weights trained on a table (zoo.data.TabularDataModule)")
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    contract = model.table_contract
    in_file = not _is_frame(source)
    frame = read_table(source) if in_file else source
    name = str(source) if in_file else "the DataFrame"
    ignored = check_columns(frame, contract, name)
    x = encode_rows(frame, contract, name, in_file)
    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            outputs.append(model(x[start:start + batch_size].to(model.device)))
    predictions = decode_output(torch.cat(outputs), contract)
    ids = frame[ID_COLUMN].tolist() if ID_COLUMN in frame.columns else frame.index.tolist()
    return [{"id": i, **p} for i, p in zip(ids, predictions)], ignored


def _is_frame(source: Any) -> bool:
    """Whether ``source`` is a pandas DataFrame (without importing pandas for a file name)."""
    return type(source).__name__ == "DataFrame" and type(source).__module__.startswith("pandas")


def write_table_rows(rows: list[dict[str, Any]], output: Path) -> None:
    """Write table predictions as CSV (``.csv``: id, then the prediction's fields) or JSON (``.json``)."""
    import csv
    import json

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InferenceError(f"--output {output}: name a .csv or .json file")
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        output.write_text(json.dumps(rows, indent=1, default=str) + "\n")
        return
    header = list(rows[0]) if rows else ["id"]
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in (row[k] for k in header)])


def format_table_rows(rows: list[dict[str, Any]], limit: int = 20) -> str:
    """The first ``limit`` table predictions as a short text table."""
    header = list(rows[0]) if rows else ["id"]

    def shown(key: str, value: Any) -> str:  # a probability to 4 decimals (0.99996 is 1.0000, not 1); a value to 5 digits
        if not isinstance(value, float):
            return str(value)
        return f"{value:.4f}" if key == "probability" else f"{value:.5g}"

    cells = [[shown(k, row[k]) for k in header] for row in rows[:limit]]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more (write them all with --output preds.csv)")
    return "\n".join(lines)


def _checked(weights: Any, fits: Callable[[Any], bool], what: str):
    """The model of ``weights`` (loaded if need be), if ``fits`` says it can do ``what``."""
    import torch

    from zoo.weights import load_pretrained

    model = weights if isinstance(weights, torch.nn.Module) else load_pretrained(weights)
    if not fits(model):
        raise InferenceError(f"{what}: {type(model).__name__} is not one (it takes {model.takes} and gives {model.gives})")
    return model


def reconstruct_files(
    weights: Any,
    paths: Iterable[str | Path],
    output: str | Path,
    batch_size: int = 256,
    skip_bad: bool = False,
    progress: bool = False,
    preprocess: str = AUTO,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Write an autoencoder's reconstruction of each image file as a PNG into the folder ``output``.

    An image named directly keeps its file name; images found in a folder keep their path below it.
    Returns the files written and the ``(path, reason)`` of each image skipped (with ``skip_bad``).
    ``preprocess`` is :func:`predict_files`'; autoencoders record no framing, so ``auto`` is plain
    and ``mnist`` frames the images as MNIST's.
    """
    model = _checked(weights, lambda m: m.takes == m.gives == "images",
                     "zoo infer writes reconstructions with an autoencoder")
    if model.condition_classes is not None:
        raise InferenceError(f"{weights} is class-conditional: it reconstructs an image given its class, which image "
                             "files do not carry. Call model(x, labels) in Python, or draw new images of a class "
                             "with zoo sample --label")
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    targets = _output_names(paths, Path(output))
    written: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    framing = input_preprocessing(model, preprocess)
    for batch_files, x in _batches(model, image_size_of(model), framing, list(targets), batch_size, skip_bad, skipped,
                                   progress):
        for path, image in zip(batch_files, model(x)):
            written.append(save_png(image, targets[path]))
    return written, skipped


def _output_names(paths: Iterable[str | Path], output: Path) -> dict[Path, Path]:
    """Input file -> the PNG it becomes under ``output``; refuses two inputs that would share a name."""
    targets: dict[Path, Path] = {}
    for path in map(Path, paths):
        names = {f: f.relative_to(path) for f in image_files([path])} if path.is_dir() else {path: Path(path.name)}
        for source, relative in names.items():
            target = output / relative.with_suffix(".png")
            clash = next((other for other, taken in targets.items() if taken == target), None)
            if clash is not None:
                raise InferenceError(f"{clash} and {source} would both be written to {target}: name them in separate runs")
            targets[source] = target
    if not targets:
        raise InferenceError("no images given: name image files or folders of images")
    return targets


def save_png(image, path: Path) -> Path:
    """Write one image (C, H, W) in [0, 1] as an 8-bit grayscale or RGB PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
    return path


def png_bytes(image) -> bytes:
    """One image (C, H, W) in [0, 1] as the bytes of an 8-bit grayscale or RGB PNG file."""
    import io

    from PIL import Image

    pixels = image.detach().float().cpu().clamp(0, 1).mul(255).round().byte()
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_files(weights: Any, n: int, output: str | Path, seed: int = 0, label: int | str | None = None) -> list[Path]:
    """Write ``n`` images generated by a VAE or GAN as ``sample_0000.png``... into the folder ``output``.

    The samples are fixed by ``seed``: the same seed gives the same images. ``label`` (a class index
    or name) asks a class-conditional model for that class; None lets it cycle through its classes.
    """
    import torch

    model = _checked(weights, lambda m: m.can_sample, "zoo sample draws images from a VAE or a GAN")
    if n < 1:
        raise InferenceError(f"N must be >= 1, got {n}")
    model.eval()
    if label is not None and model.condition_classes is None:
        raise InferenceError(f"{type(model).__name__} {weights} is unconditional: it draws images without a label "
                             "(drop --label, or use a class-conditional model: cgan_mnist or cvae_mnist)")
    try:
        images = model.sample(n, labels=label, generator=torch.Generator().manual_seed(seed))
    except ValueError as err:  # a label that is not one of the model's classes
        raise InferenceError(str(err)) from None
    width = max(4, len(str(n - 1)))
    return [save_png(image, Path(output) / f"sample_{i:0{width}d}.png") for i, image in enumerate(images)]


def top_classes(model, logits, images: Sequence[str | Path], top_k: int) -> list[dict[str, Any]]:
    """One row per image of ``images`` (names, in the order of the rows of ``logits``, the classifier
    ``model``'s output): ``path``, ``class``, ``probability`` and ``top_k``, the ``(class name,
    probability)`` of the ``top_k`` most probable classes, most probable first."""
    import torch

    names = list(model.class_names) if model.class_names is not None else [str(i) for i in range(model.class_count)]
    if logits.shape[1] == 1:  # binary: one logit, the probability of class 1
        p = torch.sigmoid(logits[:, 0])
        probabilities = torch.stack([1 - p, p], dim=1)
    else:
        probabilities = logits.float().softmax(dim=1)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    rows = []
    for path, top_values, top_indices in zip(images, values.tolist(), indices.tolist()):
        top = [(names[i], v) for i, v in zip(top_indices, top_values)]
        rows.append({"path": str(path), "class": top[0][0], "probability": top[0][1], "top_k": top})
    return rows


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
