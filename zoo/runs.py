"""What a training run's folder holds, read back: the curves by epoch, the run record, the layer dynamics,
the latest pictures and the resolved config; and what differs between runs.

A run folder is what one ``zoo fit`` writes (the logger's ``log_dir``, e.g. ``runs/lenet5_digits/version_0``):
``config.yaml``, ``metrics.csv``, ``checkpoints/``, ``images/``, and, written by
:class:`zoo.callbacks.run_page.RunPage`, ``run.json`` (the monitored key, the best and early-stopping
epochs, the time per epoch, the confusion matrix) and ``report.html``. Another callback may add
``dynamics.csv`` (``epoch,step,layer,quantity,value``). This module only reads; :mod:`zoo.run_page`
draws the page. It needs neither torch nor Lightning.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

RUN_RECORD = "run.json"
DYNAMICS = "dynamics.csv"
DYNAMICS_QUANTITIES = ("weight_norm", "grad_norm", "dead_share")
PAGE = "report.html"
BEST_CHECKPOINT = re.compile(r"best-epoch(\d+)-")  # default_callbacks' checkpoint file name


class NotARunError(UsageError):
    """A folder that no ``zoo fit`` wrote; the message says what a run folder is and where runs are."""


@dataclass
class Run:
    """One run folder, read back.

    ``curves`` maps each logged key (``train/loss``, ``val/acc``, ``lr-Adam``...) to ``{epoch: value}``,
    the last value logged in that epoch; per-step keys and the test results are left out (``test`` has them).
    """

    folder: Path
    curves: dict[str, dict[int, float]]
    test: dict[str, float]
    record: dict[str, Any]
    config_text: str
    dynamics: dict[str, dict[str, dict[int, float]]] | None  # quantity -> layer -> {epoch: value}
    pictures: dict[str, Path] = field(default_factory=dict)  # tag -> its latest PNG

    @property
    def name(self) -> str:
        """``<run_name>/version_N``: how the run folder is named under its root."""
        return f"{self.folder.parent.name}/{self.folder.name}"

    @property
    def monitor(self) -> str | None:
        return self.record.get("monitor") or next((k for k in ("val/loss", "train/loss") if k in self.curves), None)

    @property
    def mode(self) -> str:
        return self.record.get("mode") or "min"

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose checkpoint is the best: the monitored key's best value (the first, as
        ModelCheckpoint keeps the first of equal values), or the best checkpoint's file name."""
        values = self.curves.get(self.monitor or "", {})
        finite = {e: v for e, v in values.items() if math.isfinite(v)}
        if finite:
            pick = min if self.mode == "min" else max
            best = pick(finite.values())
            return min(e for e, v in finite.items() if v == best)
        names = [BEST_CHECKPOINT.match(p.name) for p in (self.folder / "checkpoints").glob("best-*.ckpt")]
        epochs = [int(m.group(1)) for m in names if m]
        return max(epochs) if epochs else None

    @property
    def epochs(self) -> list[int]:
        return sorted({e for values in self.curves.values() for e in values})


def is_run_folder(folder: Path) -> bool:
    return (folder / "metrics.csv").is_file() and (folder / "config.yaml").is_file()


def check_run_folder(folder: str | Path) -> Path:
    """``folder`` if a ``zoo fit`` run wrote it; else a :class:`NotARunError` that says what a run folder is."""
    folder = Path(folder)
    what = ("a run folder is where one `zoo fit` wrote its config.yaml and metrics.csv, "
            "runs/<recipe>/version_N under the folder it was started from (or --trainer.default_root_dir)")
    if folder.is_file():
        raise NotARunError(f"{folder} is a file, not a run folder: {what}")
    if not folder.is_dir():
        raise NotARunError(f"{folder}: no such folder; {what}")
    if is_run_folder(folder):
        return folder
    inside = [p for p in [*folder.glob("*/version_*"), *folder.glob("version_*")] if is_run_folder(p)]
    inside.sort(key=lambda p: (str(p.parent), int(p.name[len("version_"):]) if p.name[len("version_"):].isdigit() else -1))
    hint = f" Runs under it: {', '.join(str(p) for p in inside[:3])}{', ...' if len(inside) > 3 else ''}." if inside else ""
    raise NotARunError(f"{folder} is not a run folder: {what}.{hint}")


def read_run(folder: str | Path, check: bool = True) -> Run:
    """Everything the run page shows of the run in ``folder``.

    Args:
        folder: the run folder.
        check: refuse a folder that is not a run folder (:func:`check_run_folder`); without it (a run
            still being written, or one trained without the CSV logger or the ``zoo`` command), a file
            that is missing is shown as empty.
    """
    folder = check_run_folder(folder) if check else Path(folder)
    metrics, config = folder / "metrics.csv", folder / "config.yaml"
    curves, test = read_metrics(metrics) if metrics.is_file() else ({}, {})
    record_path = folder / RUN_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    dynamics_path = folder / DYNAMICS
    return Run(folder, curves, test, record, config.read_text() if config.is_file() else "",
               read_dynamics(dynamics_path) if dynamics_path.is_file() else None, latest_pictures(folder / "images"))


def metrics_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a CSVLogger's ``metrics.csv`` as the values it logged (empty cells left out; ``epoch``
    and ``step`` are ints). No file: no rows."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return [{key: int(text) if text.lstrip("-").isdigit() else float(text) for key, text in row.items() if text}
                for row in csv.DictReader(file)]


def read_metrics(path: Path) -> tuple[dict[str, dict[int, float]], dict[str, float]]:
    """The epoch curves and the test results of a CSVLogger's ``metrics.csv``.

    A row without an epoch (the learning rate, logged as an epoch starts) belongs to the epoch after
    the last row that had one. ``train/loss_epoch`` becomes ``train/loss``; ``*_step`` keys are left out.
    """
    curves: dict[str, dict[int, float]] = {}
    test: dict[str, float] = {}
    last_epoch = None
    for row in metrics_rows(path):
        row.pop("step", None)
        epoch = row.pop("epoch", None)
        if epoch is not None:
            last_epoch = epoch = int(epoch)
        else:
            epoch = 0 if last_epoch is None else last_epoch + 1
        for key, value in row.items():
            if key.endswith("_step"):
                continue
            if key.startswith("test/"):
                test[key] = float(value)
            else:
                curves.setdefault(key.removesuffix("_epoch"), {})[epoch] = float(value)
    return curves, test


def read_dynamics(path: Path) -> dict[str, dict[str, dict[int, float]]]:
    """``dynamics.csv`` (``epoch,step,layer,quantity,value``) as quantity -> layer -> {epoch: value}."""
    dynamics: dict[str, dict[str, dict[int, float]]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            if row.get("quantity") in DYNAMICS_QUANTITIES and row.get("value"):
                dynamics.setdefault(row["quantity"], {}).setdefault(row["layer"], {})[int(row["epoch"])] = float(row["value"])
    return dynamics


def latest_pictures(folder: Path) -> dict[str, Path]:
    """Each image callback's latest picture (``images/<tag>_epochNNN.png``), by tag."""
    latest: dict[str, tuple[int, Path]] = {}
    for path in folder.glob("*_epoch*.png"):
        match = re.fullmatch(r"(.+)_epoch(\d+)\.png", path.name)
        if match and int(match.group(2)) >= latest.get(match.group(1), (-1, path))[0]:
            latest[match.group(1)] = (int(match.group(2)), path)
    return {tag: path for tag, (_, path) in sorted(latest.items())}


def flat_settings(config_text: str) -> dict[str, str]:
    """A ``config.yaml`` as dotted keys -> values (``model.init_args.lr`` -> ``0.002``)."""
    import yaml

    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)

    walk("", yaml.safe_load(config_text) or {})
    return flat


def differing_settings(runs: list[Run]) -> dict[str, list[str]]:
    """The settings whose values differ between the runs' configs: key -> each run's value ("-": unset)."""
    settings = [flat_settings(run.config_text) for run in runs]
    keys = sorted(set().union(*settings))
    return {key: [s.get(key, "-") for s in settings] for key in keys if len({s.get(key, "-") for s in settings}) > 1}


def common_metrics(runs: list[Run]) -> list[str]:
    """The epoch curves every run logged (the learning rate apart), losses first; an error if there is none."""
    keys = set.intersection(*(set(run.curves) for run in runs))
    keys = sorted((k for k in keys if "/" in k), key=lambda k: (k.split("/", 1)[1] != "loss", k.split("/", 1)[1], k))
    if not keys:
        logged = "; ".join(f"{run.name}: {', '.join(sorted(run.curves)) or 'nothing'}" for run in runs)
        raise UsageError(f"the runs have no metric in common to compare ({logged})")
    return keys
