"""A callback that kills its own process, to simulate a crash at an exact training step."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class SigkillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
