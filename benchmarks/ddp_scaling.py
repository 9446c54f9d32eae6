"""Data-parallel scaling: training samples per second of LeNet-5 on MNIST with 1 and 2 DDP
processes on the CPU (gloo), and 1..N GPUs when present.

    python -m benchmarks.ddp_scaling [--epochs 1]

Each configuration runs ``zoo fit`` in a fresh process; throughput counts only the training
epochs (a callback times them), not start-up or validation.
"""

from __future__ import annotations

import argparse
import os

import torch

from benchmarks.common import machine, table
from benchmarks.throughput import fit_throughput


def run(accelerator: str, devices: int, epochs: int) -> float:
    overrides = ["--trainer.max_epochs", str(epochs), "--trainer.accelerator", accelerator,
                 "--trainer.devices", str(devices)]
    if devices > 1:
        overrides += ["--trainer.strategy", "ddp"]
    threads = max(1, (os.cpu_count() or 1) // devices) if accelerator == "cpu" else None  # one core share each
    return fit_throughput("recipes/lenet5_mnist.yaml", *overrides, threads=threads)


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
