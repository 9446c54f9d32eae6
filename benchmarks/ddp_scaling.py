"""Data-parallel scaling: training samples per second of LeNet-5 on MNIST with 1 and 2 DDP
processes on the CPU (gloo), and 1..N GPUs when present.

    python -m benchmarks.ddp_scaling [--epochs 1]

Each configuration runs ``zoo fit`` in a fresh process; throughput counts only the training
epochs (a callback times them), not start-up or validation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import machine, table

REPO = Path(__file__).resolve().parents[1]


def run(accelerator: str, devices: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "throughput.json"
        args = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(REPO / "recipes/lenet5_mnist.yaml"),
                "--trainer.max_epochs", str(epochs), "--trainer.accelerator", accelerator,
                "--trainer.devices", str(devices), "--trainer.limit_val_batches", "0",
                "--trainer.num_sanity_val_steps", "0", "--test_after_fit", "false", "--default_callbacks", "false",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_checkpointing", "false",
                "--trainer.logger", "false",
                "--trainer.callbacks+=benchmarks.throughput.Throughput", f"--trainer.callbacks.path={out}"]
        if devices > 1:
            args += ["--trainer.strategy", "ddp"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if accelerator == "cpu":
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))  # one core share per process
        subprocess.run(args, cwd=tmp, env=env, check=True, capture_output=True)
        return json.loads(out.read_text())["samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    configs = [("cpu", 1), ("cpu", 2)]
    configs += [("gpu", n) for n in range(1, torch.cuda.device_count() + 1)]
    rows, base = [], {}
    for accelerator, devices in configs:
        rate = run(accelerator, devices, args.epochs)
        base.setdefault(accelerator, rate)
        rows.append([accelerator, devices, f"{rate:,.0f}", f"{rate / base[accelerator]:.2f}x"])
    print(f"LeNet-5, MNIST, batch 128 per process; {machine()}")
    print(table(["accelerator", "processes", "samples/s", "vs 1 process"], rows))


if __name__ == "__main__":
    main()
