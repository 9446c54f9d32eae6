"""Weights as files for deployment: ``zoo export WEIGHTS --format onnx|torch.export``.

What is exported is the model's ``forward``: a classifier's logits, an autoencoder's reconstruction,
a GAN generator's images from noise (a class-conditional one's from two inputs, noise and labels;
a GAN with a noise mixture draws from it in the file, see :class:`MixtureNoise`);
``part="decoder"`` exports an autoencoder's decoder instead (a VAE's sampler: images from
z ~ N(0, I)). The batch dimension is dynamic unless asked otherwise.

Nothing is assumed to work: after writing, the exported file is loaded and run (ONNX Runtime for
ONNX, ``torch.export.load`` for the other) on seeded inputs of two batch sizes, and the export fails,
leaving no file behind, if any output differs from the eager model's by more than ``tolerance``.
Each file carries, as metadata, the weights it came from, the class names, and what its input must be.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import UsageError

FORMATS = {"onnx": ".onnx", "torch.export": ".pt2"}
PARTS = ("model", "decoder")
METADATA_FILE = "zoo.json"  # torch.export: the metadata travels as this extra file in the archive
CHECK_BATCH_SIZES = (1, 7)  # the sizes the exported file is checked on (with a dynamic batch)
EXPORT_EXTRA = 'pip install "lightning-zoo[export]"'
RECURRENT_ONNX_TORCH = "2.14"  # the oldest torch whose ONNX export of an LSTM was checked to work (2.12 fails)


class ExportError(UsageError):
    """Weights cannot be exported; the message says why."""


class ExportMismatch(ExportError):
    """The exported file does not compute what the model does (beyond the tolerance)."""


@dataclass
class ExportResult:
    path: Path
    format: str
    metadata: dict[str, Any]
    max_abs_diff: dict[int, float] = field(default_factory=dict)  # batch size -> max |exported - eager|


def export_weights(
    weights: Any,
    format: str = "onnx",
    output: str | Path | None = None,
    dynamic_batch: bool = True,
    part: str = "model",
    tolerance: float = 1e-4,
) -> ExportResult:
    """Export zoo weights and check the file against the eager model.

    Args:
        weights: a shipped name (see ``zoo list``), a ``save_pretrained`` folder, or a zoo model.
        format: ``"onnx"`` or ``"torch.export"`` (a ``.pt2`` archive for ``torch.export.load``).
        output: the file to write; None: ``<name>.onnx`` or ``<name>.pt2`` in the current folder.
        dynamic_batch: any batch size (True), or only the size the file was checked on (False, batch 1).
        part: ``"model"`` (the forward) or ``"decoder"`` (an autoencoder's decoder, a VAE's sampler).
        tolerance: the largest accepted max |exported - eager| on the check inputs.

    Returns:
        The file written, its metadata and the max |difference| measured per batch size.
    """
    from zoo.weights import atomic_write, load_pretrained

    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}: choose one of {', '.join(PARTS)}")
    if format == "onnx":
        _require_onnx()
    model = weights if isinstance(weights, torch.nn.Module) else load_pretrained(weights)
    stem = type(model).__name__.lower() if isinstance(weights, torch.nn.Module) else Path(weights).name
    module, input_shape, kind = model.exported_module(part)
    if format == "onnx" and _recurrent(module) and _torch_older_than(RECURRENT_ONNX_TORCH):
        raise ExportError(f"ONNX export of {type(model).__name__} needs torch >= {RECURRENT_ONNX_TORCH} (torch "
                          f"{torch.__version__}'s exporter writes a graph ONNX Runtime rejects for a recurrent layer "
                          "with a dynamic batch): upgrade torch, or use --format torch.export")
    default = Path(stem + FORMATS[format])  # in the current folder
    path = Path(output) if output is not None else default
    if path.is_dir():
        raise ExportError(f"--output {path} is a folder: name the file to write, e.g. {path / default}")
    path.parent.mkdir(parents=True, exist_ok=True)

    module.eval()
    sizes = CHECK_BATCH_SIZES if dynamic_batch else (1, 1)
    num_classes = module.condition_classes
    # Each check input is a tuple: (x,), or (noise, labels) for a class-conditional generator.
    inputs = [_check_input(kind, input_shape, size, seed, num_classes) for seed, size in enumerate(sizes)]
    with torch.no_grad():
        output_shape = tuple(module(*inputs[0]).shape[1:])
    metadata = _metadata(model, weights, part, input_shape, output_shape, kind, dynamic_batch)
    batch_dim = torch.export.Dim("batch", min=1, max=1 << 16)  # one dimension: noise and labels share it
    dynamic_shapes = tuple({0: batch_dim} for _ in inputs[0]) if dynamic_batch else None
    differences: dict[int, float] = {}

    def write_and_check(tmp: Path) -> None:
        with torch.no_grad():
            expected = [module(*x) for x in inputs]
        run = _write_onnx if format == "onnx" else _write_torch_export
        try:
            outputs = run(module, inputs, dynamic_shapes, metadata, tmp)
        except ExportError:
            raise
        except Exception as err:  # the exporters raise many kinds; the first line says what failed
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ExportError(f"{format} could not export {type(model).__name__}: {type(err).__name__}: {first_line}") from err
        for x, got, want in zip(inputs, outputs, expected):
            batch = len(x[0])
            if got.shape != want.shape:
                raise ExportMismatch(f"the exported file gives shape {tuple(got.shape)} for a batch of {batch}, "
                                     f"the model {tuple(want.shape)}; nothing was written")
            differences[batch] = max(differences.get(batch, 0.0), float((got - want).abs().max()))
        worst = max(differences.values())
        if not worst <= tolerance:  # also catches NaN
            raise ExportMismatch(f"the exported file differs from the model by up to {worst:.3g} (tolerance "
                                 f"{tolerance:g}) on seeded inputs; nothing was written")

    atomic_write(path, write_and_check)
    return ExportResult(path=path, format=format, metadata=metadata, max_abs_diff=differences)


def _require_onnx() -> None:
    missing = [package for package in ("onnx", "onnxscript", "onnxruntime") if not _importable(package)]
    if missing:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime ({', '.join(missing)} not installed): "
                          f"{EXPORT_EXTRA}")


def _importable(package: str) -> bool:
    from importlib.util import find_spec

    return find_spec(package) is not None


def _recurrent(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.RNNBase) for m in module.modules())


def _torch_older_than(version: str) -> bool:
    return torch.__version__ < version  # a TorchVersion: compares as a version, "2.12.0+cu130" < "2.14"


def _check_input(kind: str, shape: tuple[int, ...], batch: int, seed: int, num_classes: int | None = None) -> tuple:
    """Seeded check inputs: (x,), or (x, labels) for a class-conditional model."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "noise":
        x = torch.randn(batch, *shape, generator=generator)
    else:
        x = torch.rand(batch, *shape, generator=generator)
    return (x,) if num_classes is None else (x, torch.randint(num_classes, (batch,), generator=generator))


def _metadata(model, weights: Any, part: str, shape: tuple[int, ...], output_shape: tuple[int, ...], kind: str,
              dynamic_batch: bool) -> dict[str, Any]:
    """What a user of the exported file needs to know: its source, its input and output, the class names."""
    import zoo
    from zoo.weights import class_path_of, read_manifest

    batch = "N" if dynamic_batch else "1"
    expects = model.describe_input(batch, shape, kind)
    gives = model.describe_output(batch, output_shape)
    num_classes = model.condition_classes
    entry = read_manifest().get(weights) if isinstance(weights, str) else None
    class_names = getattr(model, "class_names", None)
    return {
        "weights": str(weights) if not isinstance(weights, torch.nn.Module) else class_path_of(weights),
        "sha256": entry["sha256"] if entry else None,
        "class_path": class_path_of(model),
        "part": part,
        "input": expects,
        "input_names": ["input"] if num_classes is None else ["noise" if kind == "noise" else "input", "labels"],
        "output": gives,
        "class_names": list(class_names) if class_names is not None else None,
        "input_framing": getattr(model, "input_framing", None),
        "zoo_version": zoo.__version__,
        "torch_version": torch.__version__,
    }


def _write_onnx(module, inputs, dynamic_shapes, metadata: dict[str, Any], path: Path):
    """Export to ONNX (the dynamo exporter), store the metadata, and run the file with ONNX Runtime."""
    import onnx
    import onnxruntime

    with _quiet_exporter():
        # Traced on the larger batch: a batch of one would fix the batch size to 1.
        names = metadata["input_names"]
        program = torch.onnx.export(module, inputs[-1], dynamo=True, dynamic_shapes=dynamic_shapes,
                                    input_names=names, output_names=["output"], verbose=False)
        if program is None:
            raise ExportError("torch.onnx.export returned no program")
        program.save(str(path))
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [torch.from_numpy(session.run(None, {name: t.numpy() for name, t in zip(names, x)})[0]) for x in inputs]


def _write_torch_export(module, inputs, dynamic_shapes, metadata: dict[str, Any], path: Path):
    """``torch.export`` the module, save the program with the metadata, and run the reloaded program."""
    with _quiet_exporter():
        # Traced on the larger batch, as for ONNX.
        program = torch.export.export(module, inputs[-1], dynamic_shapes=dynamic_shapes)
    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(metadata)})
    with _quiet_exporter():  # torch 2.12 warns about its own read-only buffers when loading
        loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        return [loaded(*x) for x in inputs]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata :func:`export_weights` stored in an exported ``.onnx`` or ``.pt2`` file."""
    path = Path(path)
    if path.suffix == ".onnx":
        _require_onnx()
        import onnx

        return {entry.key: json.loads(entry.value) for entry in onnx.load(str(path), load_external_data=False).metadata_props}
    extra = {METADATA_FILE: ""}
    with _quiet_exporter():
        torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[METADATA_FILE])


def _quiet_exporter():
    """Keep the exporters' progress lines and warnings, written for torch's developers, off the user's terminal."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack
