"""Time to accuracy, whole processes: ``zoo fit --config recipes/lenet5_mnist_fast.yaml`` against the
same recipe written by hand in plain PyTorch (``benchmarks/handwritten_lenet5.py``), from process
start to the printed test accuracy.

    python -m benchmarks.time_to_accuracy [--repeats 5] [--target 0.99] [--phases]

Each run is a fresh process in an empty folder, so a figure includes everything a user waits for:
interpreter start, imports, reading MNIST, training, validation, checkpointing and testing. The
sides alternate (zoo, script, script with the zoo's malloc setting, zoo, ...) after one warm-up run
of each, so that the machine's drift hits them alike, and the table gives each side's median and
its ratio to the hand-written script. The two compute the same thing (same network, data split,
shuffling, initial weights and schedule), so both must print the same test accuracy; the
benchmark fails if they do not, or if a run misses ``--target``.

``--phases`` adds where the time of one ``zoo fit`` goes: a callback (public Lightning hooks only)
stamps the wall clock at each stage, against the same stages of the hand-written script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

from benchmarks.common import median, table
from benchmarks.handwritten_lenet5 import STAMP, stamp

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "lenet5_mnist_fast.yaml"
# glibc's thresholds as zoo.malloc sets them, through the environment variables glibc reads at start.
ZOO_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def zoo_command(*extra: str) -> list[str]:
    zoo = shutil.which("zoo")
    if zoo is None:
        raise SystemExit("the `zoo` command is not on PATH: install the package first (pip install -e .)")
    return [zoo, "fit", "--config", str(RECIPE), *extra]


SCRIPT = [sys.executable, "-m", "benchmarks.handwritten_lenet5"]
FROM_REPO = {"PYTHONPATH": str(REPO)}  # where the benchmarks package is; the zoo is the installed one
SIDES = {  # the command and its environment
    "zoo fit (recipe as shipped)": (zoo_command, {}),
    "hand-written script": (lambda: SCRIPT, FROM_REPO),
    "hand-written script, zoo's malloc setting": (lambda: SCRIPT, {**FROM_REPO, **ZOO_MALLOC_ENV}),
}
BASELINE = "hand-written script"


class Stamps(L.Callback):
    """Stamps the stages of a ``zoo fit`` run, through public Lightning hooks (``--phases``)."""

    def setup(self, trainer, pl_module, stage):
        stamp(f"{stage} set up: imports, config, data and model ready")

    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit":  # Lightning validates inside the training epoch, before its end
            stamp("training epoch done")

    def on_validation_end(self, trainer, pl_module):
        stamp("validation done")

    def on_fit_end(self, trainer, pl_module):
        stamp("fit done (checkpoints written)")

    def on_test_end(self, trainer, pl_module):
        stamp("test done")


def run(command: list[str], env: dict[str, str], folder: Path) -> tuple[float, float, list[tuple[float, str]]]:
    """(wall seconds, test accuracy, stamps as (seconds since start, stage)) of one process."""
    start = time.time()
    result = subprocess.run(command, cwd=folder, env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    found = re.findall(r"test/acc = ([0-9.]+)", result.stdout)
    if not found:
        raise SystemExit(f"{' '.join(command)} printed no test accuracy:\n{result.stdout[-2000:]}")
    stamps = [(float(t) - start, name) for t, name in re.findall(rf"{STAMP} ([0-9.]+) (.+)", result.stderr)]
    return seconds, float(found[-1]), stamps


def phases(folder: Path) -> None:
    """Print one stamped run of each side."""
    zoo = run(zoo_command("--trainer.callbacks+=benchmarks.time_to_accuracy.Stamps"), FROM_REPO, folder / "phases")
    script = run(SCRIPT + ["--stamps"], FROM_REPO, folder / "phases_script")
    for label, (seconds, _, stamps) in (("zoo fit", zoo), ("hand-written script", script)):
        print(f"\n{label}: {seconds:.2f} s from process start")
        previous = 0.0
        rows = []
        for at, name in stamps + [(seconds, "process exited")]:
            rows.append([name, f"{at:.2f}", f"+{at - previous:.2f}"])
            previous = at
        print(table(["stage", "at s", "since the last"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (after one warm-up each)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy every run must reach")
    parser.add_argument("--phases", action="store_true", help="also print where the time of one run goes")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SIDES}
    accuracies: dict[str, list[float]] = {name: [] for name in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for repeat in range(args.repeats + 1):
            for name, (command, env) in SIDES.items():
                workdir = folder / f"{len(times[name])}-{repeat}-{abs(hash(name))}"
                workdir.mkdir()
                seconds, accuracy, _ = run(command(), env, workdir)
                if repeat > 0:  # the first round warms the file cache and the interpreter's bytecode
                    times[name].append(seconds)
                    accuracies[name].append(accuracy)
                print(f"  {'warm-up' if repeat == 0 else f'run {repeat}'}: {name}: {seconds:.1f} s, "
                      f"test/acc {accuracy:.4f}", file=sys.stderr, flush=True)
        if args.phases:
            (folder / "phases").mkdir()
            (folder / "phases_script").mkdir()
            phases(folder)
    base = median(times[BASELINE])
    rows = [[name, f"{median(t):.2f}", f"{min(t):.2f}–{max(t):.2f}", f"{median(t) / base:.2f}×",
             " ".join(f"{100 * a:.2f}" for a in sorted(set(accuracies[name])))] for name, t in times.items()]
    print(f"\n{RECIPE.relative_to(REPO)}: {args.repeats} alternating runs of each side after a warm-up")
    print(table(["side", "median s", "min–max s", f"÷ {BASELINE}", "test acc %"], rows))
    zoo_name = next(iter(SIDES))
    print(f"\nzoo fit / hand-written script: {median(times[zoo_name]) / base:.3f} (target <= 1.25); "
          f"/ with the zoo's malloc setting: {median(times[zoo_name]) / median(times[list(SIDES)[2]]):.3f}")
    missed = [name for name, accs in accuracies.items() if min(accs) < args.target]
    if len({a for accs in accuracies.values() for a in accs}) > 1:
        raise SystemExit("the sides printed different test accuracies: they no longer compute the same thing")
    if missed:
        raise SystemExit(f"below the {100 * args.target:g} % target: {', '.join(missed)}")


if __name__ == "__main__":
    main()
