"""Checkpoints a crash cannot corrupt, the ``last.ckpt`` that resumes a crashed run, and checkpoint files
checked and read without unpickling objects."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.errors import CheckpointError

#: checkpoint names that are not files: "last" the zoo resolves (ZooCLI.before_fit), the others Lightning
CKPT_NAMES = ("last", "best", "hpc")


def check_checkpoint_file(ckpt_path, flag: str = "--ckpt_path") -> dict | None:
    """Refuse a checkpoint that is missing, truncated or not a checkpoint, before anything runs.

    Returns the checkpoint (memory-mapped, read without unpickling objects); None for no path or a name
    such as ``last``. ``flag`` is the option the path was given with, as the error names it ("" for an
    argument without one, as ``zoo evaluate`` takes it)."""
    if not ckpt_path or ckpt_path in CKPT_NAMES:
        return None
    named = f"{flag} {ckpt_path}" if flag else str(ckpt_path)
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"{named}: no such checkpoint file")
    try:
        return torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"{named} is truncated, corrupt or not a Lightning checkpoint ({err}). "
            "Nothing was loaded; pass another checkpoint (e.g. best-*.ckpt or last.ckpt beside it)."
        ) from err


def model_from_checkpoint(path: str | Path, class_path: str | None = None):
    """The model of a ``zoo fit`` checkpoint, on the CPU, read without unpickling objects.

    ``class_path`` names the model's class (as a recipe does); None: the class the checkpoint records
    (``zoo fit`` records it). The class must be a registered zoo model."""
    from zoo.registry import class_by_path, model_classes

    checkpoint = check_checkpoint_file(str(path), flag="")
    class_path = class_path or checkpoint.get("hyper_parameters", {}).get("_class_path")
    if class_path is None:
        raise CheckpointError(f"{path} does not record its model class (it was not written by zoo fit): "
                              "pass the recipe it was trained with")
    cls = class_by_path(class_path, model_classes())
    if cls is None:
        raise CheckpointError(f"{path}: model class {class_path!r} is not a zoo model")
    return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file, then rename it into place.

    A process killed mid-save leaves the previous ``last.ckpt`` intact and loadable (a rename
    within one folder is atomic), never a half-written file under the real name.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def checkpoint_dir(trainer) -> Path:
    """The run's checkpoint folder, where Lightning's ``ModelCheckpoint`` puts its files too:
    ``<save_dir>/<name>/<version>/checkpoints`` of the first logger, else ``<default_root_dir>/checkpoints``.

    Call it on every rank: under DDP the folder is rank zero's (a broadcast).
    """
    if trainer.loggers:
        logger = trainer.loggers[0]
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        folder = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version / "checkpoints"
    else:
        folder = Path(trainer.default_root_dir) / "checkpoints"
    return Path(trainer.strategy.broadcast(str(folder)))


class LastCheckpoint(Checkpoint):
    """Keep ``last.ckpt`` current: after every training epoch and, if asked, every N training steps.

    This is what ``zoo fit --ckpt_path last`` resumes from, so a crash loses at most the epoch (or
    the N steps) in progress. The file goes to ``dirpath``, by default the run's checkpoint folder
    (:func:`checkpoint_dir`, beside the best checkpoint).

    Args:
        dirpath: folder of ``last.ckpt``; None: the run's ``checkpoints`` folder.
        every_n_train_steps: also save every this many optimizer steps (None: at epoch ends only).
    """

    FILE_NAME = "last.ckpt"

    def __init__(self, dirpath: str | os.PathLike | None = None, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or None, got {every_n_train_steps}")
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.last_model_path = ""  # the file once written, for messages such as the NaN guard's
        self._saved_at_step = -1

    @property
    def state_key(self) -> str:
        return f"LastCheckpoint{{every_n_train_steps={self.every_n_train_steps}}}"

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = checkpoint_dir(trainer)

    def _save(self, trainer) -> None:
        path = self.dirpath / self.FILE_NAME
        trainer.save_checkpoint(path)  # on every rank: rank zero writes, the others wait for it
        self.last_model_path, self._saved_at_step = str(path), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.every_n_train_steps
        step = trainer.global_step
        if every is not None and step % every == 0 and step != self._saved_at_step and not trainer.sanity_checking:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)  # also when a step save came at the same step: this one records the finished epoch
