"""Time to accuracy, whole processes: ``zoo fit --config recipes/lenet5_mnist_fast.yaml`` against the
same recipe written by hand in plain PyTorch (``benchmarks/handwritten_lenet5.py``) and against the
fastest hand-written LeNet-5 run found, from process start to the printed test accuracy.

    python -m benchmarks.time_to_accuracy [--repeats 5] [--target 0.99] [--phases]

Each run is a fresh process in an empty folder, so a figure includes everything a user waits for:
interpreter start, imports, reading MNIST, training, validation, checkpointing and testing. The
sides alternate (zoo, script, script with the zoo's malloc setting, fastest script, zoo, ...) after
one warm-up run of each, so that the machine's drift hits them alike; the table gives each side's
median and the ratios. The zoo and the script of the same recipe compute the same thing (network,
data split, shuffling, initial weights, schedule), so they must print the same test accuracy; the
benchmark fails if they do not, or if any run misses ``--target``.

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
ZOO = "zoo fit (recipe as shipped)"
SAME = "same recipe by hand"
SAME_MALLOC = "same recipe by hand, the zoo's malloc setting"
FASTEST = "fastest by hand (1.75 epochs, own AdamW), the zoo's malloc setting"
SIDES = {  # the command and its environment
    ZOO: (zoo_command, {}),
    SAME: (lambda: SCRIPT, FROM_REPO),
    SAME_MALLOC: (lambda: SCRIPT, {**FROM_REPO, **ZOO_MALLOC_ENV}),
    FASTEST: (lambda: [*SCRIPT, "--epochs", "1.75", "--hand_adamw"], {**FROM_REPO, **ZOO_MALLOC_ENV}),
}
IDENTICAL = (ZOO, SAME, SAME_MALLOC)  # these compute the same thing


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
    script = run(SCRIPT + ["--stamps"], {**FROM_REPO, **ZOO_MALLOC_ENV}, folder / "phases_script")
    for label, (seconds, _, stamps) in ((ZOO, zoo), (SAME_MALLOC, script)):
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
    zoo = median(times[ZOO])
    rows = [[name, f"{median(t):.2f}", f"{min(t):.2f}–{max(t):.2f}", f"{zoo / median(t):.2f}",
             " ".join(f"{100 * a:.2f}" for a in sorted(set(accuracies[name])))] for name, t in times.items()]
    print(f"\n{RECIPE.relative_to(REPO)}: {args.repeats} alternating runs of each side after a warm-up")
    print(table(["side", "median s", "min–max s", "zoo fit ÷ side", "test acc %"], rows))
    print(f"\nzoo fit / {SAME_MALLOC}: {zoo / median(times[SAME_MALLOC]):.3f} (target <= 1.25)")
    print(f"zoo fit / {FASTEST}: {zoo / median(times[FASTEST]):.3f} (target <= 1.2)")
    missed = [name for name, accs in accuracies.items() if min(accs) < args.target]
    if len({a for name in IDENTICAL for a in accuracies[name]}) > 1:
        raise SystemExit(f"{', '.join(IDENTICAL)} printed different test accuracies: they no longer compute the same thing")
    if missed:
        raise SystemExit(f"below the {100 * args.target:g} % target: {', '.join(missed)}")


if __name__ == "__main__":
    main()
