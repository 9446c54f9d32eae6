"""Checkpoints a crash cannot corrupt, and the ``last.ckpt`` that resumes a crashed run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


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
