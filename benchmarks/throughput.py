"""A callback that measures training throughput (samples/s over the training epochs only)."""

from __future__ import annotations

import json
import time

from lightning.pytorch.callbacks import Callback


class Throughput(Callback):
    def __init__(self, path: str) -> None:
        self.path, self.samples, self.seconds = path, 0, 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += batch[0].shape[0] * trainer.world_size

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds += time.perf_counter() - self._start

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with open(self.path, "w") as f:
                json.dump({"samples_per_second": self.samples / self.seconds}, f)
