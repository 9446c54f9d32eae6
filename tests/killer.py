"""A callback that kills its own process, to simulate a crash at an exact training step."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class SigkillAtStep(Callback):
    """Kill the process at the end of the first batch whose global step is >= ``step`` (under manual
    optimization with two optimizers the global step grows by two per batch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SigkillRankAtStep(SigkillAtStep):
    """Kill only the process of global ``rank``: the other DDP ranks must notice and fail."""

    def __init__(self, step: int, rank: int = 1) -> None:
        super().__init__(step)
        self.rank = rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
