"""Training throughput of one ``zoo fit`` process: a callback that times it and a helper that runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

REPO = Path(__file__).resolve().parents[1]


class Throughput(Callback):
    """Training samples per second after the first ``warmup_steps`` steps (compilation, caches, first-touch
    allocations), over the training batches only: validation and checkpointing are excluded."""

    def __init__(self, path: str, warmup_steps: int = 0) -> None:
        self.path, self.warmup_steps = path, warmup_steps
        self.samples, self.seconds, self._steps, self._start = 0, 0.0, 0, None

    @staticmethod
    def _now(pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._steps >= self.warmup_steps:
            self._start = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps += 1
        if self._start is not None:
            self.samples += batch[0].shape[0] * trainer.world_size
        if self._steps == self.warmup_steps:
            self._start = self._now(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is not None:
            self.seconds += self._now(pl_module) - self._start
            self._start = None

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            if not self.samples:
                raise RuntimeError(f"no step was timed: the run had {self._steps} steps, warm-up was {self.warmup_steps}")
            with open(self.path, "w") as f:
                json.dump({"samples_per_second": self.samples / self.seconds, "timed_steps": self._steps - self.warmup_steps}, f)


def fit_throughput(recipe: str, *overrides: str, warmup_steps: int = 0, threads: int | None = None,
                   env: dict[str, str] | None = None) -> float:
    """Samples/s of ``zoo fit --config recipe *overrides`` in a fresh process (with ``env`` added to its
    environment), training only: no validation, test, checkpoints, logger, progress bar or default
    callbacks."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "throughput.json"
        args = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(REPO / recipe),
                "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                "--test_after_fit", "false", "--default_callbacks", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_checkpointing", "false", "--trainer.logger", "false", *overrides,
                "--trainer.callbacks+=benchmarks.throughput.Throughput", f"--trainer.callbacks.path={out}",
                f"--trainer.callbacks.warmup_steps={warmup_steps}"]
        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
        if threads is not None:
            environment["OMP_NUM_THREADS"] = str(threads)
        result = subprocess.run(args, cwd=tmp, env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"zoo fit {' '.join(overrides)} failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())["samples_per_second"]
