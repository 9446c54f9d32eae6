"""Time to accuracy: wall time of ``zoo fit --config recipes/lenet5_mnist_fast.yaml`` until the test
accuracy of its best checkpoint is printed, on the CPU (and on the GPU when there is one).

    python -m benchmarks.time_to_accuracy [--repeats 3] [--target 0.99]

Each run is a fresh ``zoo`` process in an empty folder, so the figure includes everything a user
waits for: interpreter start, imports, reading MNIST, training, validation, checkpointing and testing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, median, table

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "lenet5_mnist_fast.yaml"


def run(accelerator: str) -> tuple[float, float]:
    """(wall seconds, test accuracy) of one ``zoo fit`` of the fast recipe."""
    zoo = shutil.which("zoo")
    if zoo is None:
        raise SystemExit("the `zoo` command is not on PATH: install the package first (pip install -e .)")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run([zoo, "fit", "--config", str(RECIPE), "--trainer.accelerator", accelerator,
                                 "--trainer.enable_progress_bar", "false"],
                                cwd=folder, env=os.environ, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"zoo fit failed:\n{result.stderr[-3000:]}")
    line = next(l for l in result.stdout.splitlines() if l.startswith("Test results"))
    return seconds, float(line.split("test/acc = ")[1].split(",")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy the recipe must reach")
    args = parser.parse_args()
    accelerators = ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
    rows = []
    for accelerator in accelerators:
        runs = [run(accelerator) for _ in range(args.repeats)]
        seconds = [s for s, _ in runs]
        accuracies = [a for _, a in runs]
        reached = "yes" if min(accuracies) >= args.target else "NO"
        rows.append([accelerator, f"{median(seconds):.1f}", " ".join(f"{s:.1f}" for s in seconds),
                     " ".join(f"{100 * a:.2f}" for a in accuracies), reached])
    print(f"{RECIPE.relative_to(REPO)}, one fresh `zoo fit` process per run; {machine()}")
    print(table(["accelerator", "median s", "runs s", "test acc %", f">= {100 * args.target:g}%"], rows))


if __name__ == "__main__":
    main()
