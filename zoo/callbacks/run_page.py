"""The run page: ``report.html`` in the run folder, refreshed as epochs end and complete when the run ends.

What the page needs beyond the logger's files goes to ``run.json`` beside them (:mod:`zoo.runs`): the
monitored key, the early-stopping epoch, the seconds of each epoch, how the run ended and, for a
classifier, the best checkpoint's confusion matrix on the validation split. ``zoo report RUN_DIR``
draws the same page again from these files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from zoo.models.base import ZooModule
from zoo.runs import PAGE, RUN_RECORD, read_run


class RunPage(Callback):
    """Write the run page at epoch ends and when the run ends (finished, stopped early or interrupted).

    Drawing the page takes about half a second. An epoch's end redraws it when the drawings so far,
    this one and the last one (when the run ends) together stay within ``max_share`` of the time the
    run has trained: epochs of a minute each get a page each, a run of a few seconds gets one page, at
    its end. The page of a run that ended is always drawn. Only rank zero writes.

    A classifier's confusion matrix is that of the best epoch, counted from that epoch's own validation
    pass (which is what its checkpoint scored): no pass of its own at the end, but under DDP, where each
    rank sees a part of the split.

    Args:
        max_share: the largest share of the training time that drawing the page may take.
        confusion: show a classifier's confusion matrix of the best checkpoint on the validation split.
        checkpoint: the ModelCheckpoint whose best the page shows (default: ``trainer.checkpoint_callback``,
            the first in the trainer's list, which may be one a user added to keep every epoch).
    """

    FIRST_DRAWING_SECONDS = 0.7  # what a drawing is taken to cost before the first one is timed

    def __init__(self, max_share: float = 0.03, confusion: bool = True, checkpoint: ModelCheckpoint | None = None) -> None:
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {max_share}")
        self.max_share = max_share
        self.confusion = confusion
        self.checkpoint = checkpoint
        self.folder: Path | None = None
        self.record: dict = {}
        self.epoch_started = 0.0
        self.started = 0.0  # when training started
        self.drawings_seconds = 0.0  # what the drawings so far cost
        self.hook = None  # while a validation epoch counts predictions for the confusion matrix
        self.predicted: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.classes = 2
        self.best_value = float("nan")
        self.best_matrix: dict | None = None
        # Set by whoever runs the test of the best checkpoint right after fit (zoo fit's test_after_fit):
        # the finished page is then drawn once, at the test's end.
        self.test_follows = False
        self.draw_seconds = 0.0  # what the last drawing cost

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        log_dir = trainer.log_dir  # every rank asks: under DDP it is a broadcast
        self.folder = Path(log_dir) if log_dir else None
        checkpoint, stopping = self._checkpoint(trainer), trainer.early_stopping_callback
        monitor = checkpoint.monitor if checkpoint is not None and checkpoint.monitor else (
            stopping.monitor if stopping is not None else pl_module.monitor if isinstance(pl_module, ZooModule) else None)
        mode = checkpoint.mode if checkpoint is not None and checkpoint.monitor else (
            stopping.mode if stopping is not None else pl_module.monitor_mode if isinstance(pl_module, ZooModule) else "min")
        previous = self._previous_record()  # a resumed run keeps the epochs it already timed
        self.record = {"monitor": monitor, "mode": mode, "status": "running", "stopped_epoch": None,
                       "epoch_seconds": previous.get("epoch_seconds", {})}  # str(epoch) -> seconds

    def _checkpoint(self, trainer) -> ModelCheckpoint | None:
        return self.checkpoint if self.checkpoint is not None else trainer.checkpoint_callback

    @property
    def page(self) -> Path | None:
        """Where the page of the run is written (None before fit sets it up, or without a logger)."""
        return self.folder / PAGE if self.folder is not None else None

    def _previous_record(self) -> dict:
        path = self.folder / RUN_RECORD if self.folder is not None else None
        return json.loads(path.read_text()) if path is not None and path.is_file() else {}

    # ----- the confusion matrix of the best epoch, from the validation passes themselves -------------
    # The best checkpoint holds the weights of the epoch whose validation scored best; that epoch's
    # predictions are its confusion matrix, so no pass of its own is needed at the end (under DDP each
    # rank sees a shard, and the end of fit measures the checkpoint on the whole split instead).

    def _counts_confusion(self, trainer, pl_module) -> bool:
        return (self.confusion and self.folder is not None and trainer.is_global_zero and trainer.world_size == 1
                and not trainer.sanity_checking and isinstance(pl_module, ZooModule) and pl_module.gives == "classes")

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.predicted, self.targets, self.classes = [], [], 2
        if self._counts_confusion(trainer, pl_module):
            self.hook = pl_module.register_forward_hook(self._count)

    def _count(self, module, args, output) -> None:
        output = output.detach()
        if output.shape[1] > 1:
            self.classes = output.shape[1]
            self.predicted.append(output.argmax(1))
        else:  # a binary classifier's one logit
            self.predicted.append((output[:, 0] > 0).long())

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.hook is not None and dataloader_idx == 0:
            self.targets.append(batch[1].detach().long().view(-1))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

    def on_validation_end(self, trainer, pl_module) -> None:
        # Here, as for ModelCheckpoint, the epoch's validation metrics are in callback_metrics.
        predicted, targets, self.predicted, self.targets = self.predicted, self.targets, [], []
        value = trainer.callback_metrics.get(self.record.get("monitor") or "")
        if value is None or not targets or len(predicted) != len(targets):
            return
        value = float(value)
        better = value > self.best_value if self.record.get("mode") == "max" else value < self.best_value
        if self.best_value == self.best_value and not better:  # the first epoch compares with nan
            return
        self.best_value = value
        predicted, target = torch.cat(predicted).cpu(), torch.cat(targets).cpu()
        n = self.classes
        matrix = torch.bincount(target * n + predicted, minlength=n * n).view(n, n)
        names = list(pl_module.class_names or [str(i) for i in range(n)])
        self.best_matrix = {"matrix": matrix.tolist(), "class_names": names, "images": len(target)}

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.folder is None or trainer.sanity_checking:
            return
        self.record["epoch_seconds"][str(trainer.current_epoch)] = round(time.perf_counter() - self.epoch_started, 4)
        trained = time.perf_counter() - self.started
        drawing = self.draw_seconds or self.FIRST_DRAWING_SECONDS
        if self.drawings_seconds + 2 * drawing <= self.max_share * trained:  # this page and the last one
            self.write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.folder is None:
            return
        stopping = trainer.early_stopping_callback
        if stopping is not None and stopping.stopped_epoch > 0:
            self.record["stopped_epoch"] = stopping.stopped_epoch
        self.record["status"] = "finished"
        checkpoint = self._checkpoint(trainer)
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if self.best_matrix is not None:  # counted as the best epoch validated
            self.record["confusion"] = {**self.best_matrix, "checkpoint": Path(best).name if best else None}
        elif self.confusion and isinstance(pl_module, ZooModule) and pl_module.gives == "classes" and trainer.datamodule is not None:
            self.record["confusion"] = self.best_confusion(trainer, pl_module)
        if not self.test_follows:  # else the test's end draws the finished page, with its results
            self.write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        """The test after fit (``--test_after_fit``) adds its results to the run's page."""
        if trainer.is_global_zero and self.folder is not None and self.record.get("status") == "finished":
            self.write(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not trainer.is_global_zero or self.folder is None or not self.record:
            return
        if self.record.get("status") != "finished":  # else training was over, and the test after it stopped
            self.record["status"] = "interrupted"
        self.write(trainer)

    def best_confusion(self, trainer, pl_module: ZooModule) -> dict:
        """The confusion matrix of the best checkpoint (else the weights as they are) on the validation split.
        The model's own weights are put back afterwards."""
        from zoo.report import confusion_matrix

        checkpoint = self._checkpoint(trainer)
        best = checkpoint.best_model_path if checkpoint is not None else ""
        current = {key: value.detach().clone() for key, value in pl_module.state_dict().items()} if best else None
        was_training = pl_module.training
        try:
            if best:
                state = torch.load(best, map_location=pl_module.device, weights_only=True)["state_dict"]
                pl_module.load_state_dict(state)
            pl_module.eval()
            matrix, names = confusion_matrix(pl_module, trainer.datamodule.val_dataloader())
        finally:
            if current is not None:
                pl_module.load_state_dict(current)
            pl_module.train(was_training)
        return {"matrix": matrix, "class_names": names, "images": sum(map(sum, matrix)),
                "checkpoint": Path(best).name if best else None}

    def write(self, trainer) -> None:
        """``run.json`` and the page, from the logger's files as they are now."""
        from zoo.run_page import write_run_page

        started = time.perf_counter()
        for logger in trainer.loggers:
            logger.save()  # the CSV logger's rows still in memory, to metrics.csv
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / RUN_RECORD).write_text(json.dumps(self.record, indent=1) + "\n")
        run = read_run(self.folder, check=False)
        if "confusion" in self.record:
            self.record["confusion"]["epoch"] = run.best_epoch
            run.record = self.record
            (self.folder / RUN_RECORD).write_text(json.dumps(self.record, indent=1) + "\n")
        write_run_page(run)
        self.draw_seconds = time.perf_counter() - started
        self.drawings_seconds += self.draw_seconds
