"""Pretrained weights as data: safetensors files, a sha256 for each, strict key/shape matching.

A weights folder (``save_pretrained``) holds ``model.safetensors`` and ``config.json``. The weights
shipped with the package live in ``zoo/_weights`` (the repository's ``weights/`` folder), listed in
``manifest.json`` with their hash, hyperparameters, dataset, test metrics and the recipe that made
them. Nothing here ever unpickles a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import WeightsError
from zoo.names import did_you_mean
from zoo.registry import model_classes
from zoo.shipped import shipped_dir

if TYPE_CHECKING:  # torch and safetensors are imported where weights are read or written: `zoo list` needs neither
    import torch

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
MANIFEST_FILE = "manifest.json"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_weights_dir() -> Path:
    """The folder of the weights shipped with the package (:func:`zoo.shipped.shipped_dir`)."""
    return shipped_dir("weights")


def read_manifest(directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    path = Path(directory or shipped_weights_dir()) / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path} is not valid JSON: {err}") from err


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"hyperparameter value {value!r} of type {type(value).__name__} cannot be stored in config.json")


def class_path_of(model: torch.nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def model_config(model) -> dict[str, Any]:
    """Class and hyperparameters that rebuild ``model`` (no weights)."""
    hparams = {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")}
    return {"class_path": class_path_of(model), "hparams": _jsonable(hparams)}


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    # The temporary file keeps the suffix: some writers (torch.export.save) go by it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Save the state dict as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    return sha256_of(path)


def save_pretrained(model, directory: str | Path, metrics: dict[str, float] | None = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a model card, ``README.md``, into ``directory``
    (the Hugging Face Hub's layout); returns the folder."""
    from zoo.cards import model_card

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sha256 = save_weights(model, directory / WEIGHTS_FILE)
    config = {**model_config(model), "sha256": sha256, "metrics": dict(metrics or {})}
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    card = model_card(directory.resolve().name, {**config, "num_params": sum(p.numel() for p in model.parameters())})
    atomic_write(directory / CARD_FILE, lambda tmp: tmp.write_text(card))
    return directory


def model_class(config: dict[str, Any], source: str) -> type:
    """The class named in ``config``, allowed only if it is a registered zoo model."""
    allowed = model_classes()
    class_path = config.get("class_path")
    if class_path not in allowed:
        raise WeightsError(f"{source}: class_path {class_path!r} is not a zoo model; known: {', '.join(sorted(allowed))}")
    return allowed[class_path]


def build_model(config: dict[str, Any], source: str):
    """Instantiate the class named in ``config`` (see :func:`model_class`) from its hyperparameters."""
    return model_class(config, source)(**config.get("hparams", {}))


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` only if every key and shape matches; otherwise nothing is loaded."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise WeightsError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def read_weights(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its sha256."""
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise WeightsError(
                f"{path} has sha256 {actual}, but {sha256} was recorded: the file is modified or corrupt. "
                "Restore the original file (reinstall the package or re-download it)."
            )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path} is not a readable safetensors file: {err}") from err


def shipped_names() -> list[str]:
    """Names of the weights shipped inside the package (see ``zoo list``)."""
    return sorted(read_manifest())


def _locate(name_or_dir: str | Path) -> tuple[dict[str, Any], Path, str]:
    """(config, weights file, description) of shipped weights by name or of a ``save_pretrained`` folder."""
    directory = Path(name_or_dir)
    if directory.is_dir():
        config_path = directory / CONFIG_FILE
        if not config_path.exists():
            raise WeightsError(f"{directory} has no {CONFIG_FILE}; expected a folder written by save_pretrained()")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise WeightsError(f"{config_path} is not valid JSON: {err}") from err
        return config, directory / WEIGHTS_FILE, str(directory)
    manifest = read_manifest()
    name = str(name_or_dir)
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none"
        raise WeightsError(f"no shipped weights named {name!r} and no such folder.{did_you_mean(name, manifest)} "
                           f"The shipped weights: {known} (`zoo list` describes them)")
    entry = manifest[name]
    return entry, shipped_weights_dir() / entry["file"], f"shipped weights {name!r}"


def read_pretrained(name_or_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config (class path, hyperparameters, metrics) and the sha256-checked state dict of zoo weights."""
    config, weights_path, source = _locate(name_or_dir)
    if "sha256" not in config:
        raise WeightsError(f"{source}: no sha256 recorded, refusing to load unverified weights")
    return config, read_weights(weights_path, config["sha256"])


def load_pretrained(name_or_dir: str | Path):
    """Load shipped weights by name, or a folder written by ``save_pretrained``.

    Returns the model in eval mode on the CPU. The sha256 of the weights file is checked and every
    key and shape must match; no pickle is ever loaded.
    """
    config, state = read_pretrained(name_or_dir)
    source = str(name_or_dir)
    model = build_model(config, source)
    load_state_strict(model, state, source)
    model.pretrained_metrics = dict(config.get("metrics", {}))
    return model.eval()


def publish(model, name: str, directory: str | Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Write ``<name>.safetensors`` into ``directory`` and record it in the folder's manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    file = f"{name}.safetensors"
    sha256 = save_weights(model, directory / file)
    num_params = sum(p.numel() for p in model.parameters())
    record = {"file": file, "sha256": sha256, **model_config(model), "num_params": num_params, **entry}
    manifest = read_manifest(directory)
    manifest[name] = record
    text = json.dumps(dict(sorted(manifest.items())), indent=2, sort_keys=True) + "\n"
    atomic_write(directory / MANIFEST_FILE, lambda tmp: tmp.write_text(text))
    return record
