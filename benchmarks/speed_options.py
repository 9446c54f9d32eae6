"""Speed options: training throughput of LeNet-5 (MNIST) and the small AlexNet (Fashion-MNIST)
with ``--trainer.precision bf16-mixed``, ``--channels_last true`` and ``--compile true``, each
against the same recipe without it, on the CPU and (when there is one) the GPU.

    python -m benchmarks.speed_options [--models lenet5 alexnet] [--steps 150] [--warmup 30] [--repeats 3]

Each run is one fresh ``zoo fit`` process running ``warmup + steps`` training steps of the model's
recipe; throughput counts the last ``steps`` only, so compilation and caches are left out (the
process's wall time, compilation included, is shown beside it). The options' runs alternate, each
``repeats`` times, and the table gives medians. On the CPU a row without the zoo command's
malloc setting (``ZOO_SYSTEM_MALLOC=1``, see ``zoo.malloc``) shows what that setting is worth. On a
GPU the datasets are kept on the device
(``--data.init_args.on_device true``) in every row, including the baseline.
"""

from __future__ import annotations

import argparse
import time
from statistics import median
from typing import NamedTuple

import torch

from benchmarks.common import machine, table
from benchmarks.throughput import fit_throughput


class Option(NamedTuple):
    """One row: the ``zoo fit`` arguments it adds to the recipe, and environment variables it sets."""

    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None


RECIPES = {"lenet5": "recipes/lenet5_mnist.yaml", "alexnet": "recipes/alexnet_fashionmnist.yaml"}
BASELINE = "fp32 (baseline)"
OPTIONS = {
    BASELINE: Option(),
    "bf16-mixed": Option(("--trainer.precision", "bf16-mixed")),
    "channels_last": Option(("--channels_last", "true")),
    "torch.compile": Option(("--compile", "true")),
}
# Not a flag: the zoo command keeps freed memory for reuse (zoo.malloc); this row runs without that.
CPU_OPTIONS = {"fp32, glibc's malloc defaults": Option(env={"ZOO_SYSTEM_MALLOC": "1"})}
GPU_OPTIONS = {"bf16-mixed + channels_last + compile": Option(("--trainer.precision", "bf16-mixed",
                                                               "--channels_last", "true", "--compile", "true"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES, reverse=True))
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation, caches)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per option, alternating")
    parser.add_argument("--accelerators", nargs="+", choices=["cpu", "gpu"],
                        default=["cpu"] + (["gpu"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    rows = []
    for accelerator in args.accelerators:
        options = OPTIONS | (GPU_OPTIONS if accelerator == "gpu" else CPU_OPTIONS)
        device_args = ["--trainer.accelerator", accelerator, "--trainer.devices", "1"]
        if accelerator == "gpu":
            device_args += ["--data.init_args.on_device", "true"]
        for model in args.models:
            rates: dict[str, list[float]] = {label: [] for label in options}
            walls: dict[str, list[float]] = {label: [] for label in options}
            for _ in range(args.repeats):
                for label, option in options.items():
                    start = time.perf_counter()
                    rates[label].append(fit_throughput(
                        RECIPES[model], *device_args, "--trainer.max_epochs", "1",
                        "--trainer.limit_train_batches", str(args.warmup + args.steps), *option.args,
                        warmup_steps=args.warmup, env=option.env))
                    walls[label].append(time.perf_counter() - start)
                    print(f"{accelerator} {model} {label}: {rates[label][-1]:,.0f} samples/s", flush=True)
            base = median(rates[BASELINE])
            for label in options:
                rate = median(rates[label])
                rows.append([accelerator, model, label, f"{rate:,.0f}", " ".join(f"{r:,.0f}" for r in rates[label]),
                             f"{rate / base:.2f}x", f"{median(walls[label]):.0f}"])
    print(f"\n{args.warmup} warm-up + {args.steps} timed training steps per run, recipe batch sizes, "
          f"medians of {args.repeats} runs; {machine()}")
    print(table(["device", "model", "option", "samples/s", "runs", "vs fp32", "process wall s"], rows))


if __name__ == "__main__":
    main()
