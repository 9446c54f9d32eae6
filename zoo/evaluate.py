"""Re-measure shipped weights on their real test split."""

from __future__ import annotations

from typing import Any

import lightning as L

from zoo.weights import WeightsError, load_pretrained, read_manifest


def datamodule_for(name: str, **overrides: Any):
    """The test DataModule recorded in the manifest for shipped weights ``name``."""
    from zoo.registry import datamodule_classes

    entry = read_manifest().get(name)
    if entry is None:
        raise WeightsError(f"no shipped weights named {name!r}; shipped: {', '.join(sorted(read_manifest())) or 'none'}")
    spec = entry["datamodule"]
    classes = datamodule_classes()
    if spec["class_path"] not in classes:
        raise WeightsError(f"manifest entry {name!r} names an unknown datamodule {spec['class_path']!r}")
    init_args = {**spec.get("init_args", {}), **overrides}
    return classes[spec["class_path"]](**init_args)


def measure_test_metrics(model, datamodule, accelerator: str = "auto") -> dict[str, float]:
    """What ``trainer.test`` logs for ``model`` on ``datamodule``'s test split (one device, no logger)."""
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False)
    return {key: float(value) for key, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}


def evaluate_pretrained(name: str, data_dir: str | None = None, accelerator: str = "auto") -> dict[str, dict[str, float]]:
    """Test shipped weights ``name``; returns ``{metric: {"measured": m, "recorded": r}}``."""
    measured = measure_test_metrics(load_pretrained(name), datamodule_for(name, data_dir=data_dir), accelerator)
    recorded = read_manifest()[name]["metrics"]
    return {key: {"measured": float(measured[key]), "recorded": float(value)} for key, value in recorded.items() if key in measured}
