"""Framework overhead: one epoch of the zoo's LeNet-5 on MNIST through the Lightning Trainer vs a
hand-written PyTorch loop with the identical network, data tensors, batch size and optimizer.

    python -m benchmarks.overhead [--repeats 7] [--batch_size 128]

The process first keeps freed memory for reuse, as the ``zoo`` command does (``zoo.malloc``; run
with ``ZOO_SYSTEM_MALLOC=1`` to keep glibc's defaults); the table shows each side's page faults.
All sides start from the same weights; runs alternate (zoo, bare, loop, zoo, bare, loop, ...) in
one process. The zoo side is the zoo as users run it: input validation, torchmetrics accuracy and
logging included; progress bar, checkpointing and validation off. The bare side is the smallest
LightningModule with the same network, loss and optimizer through the same Trainer: the difference
between it and the plain loop is Lightning's own cost, the rest is the zoo's.

A second table gives the same three sides' cost per training step at batch 2, where the arithmetic
is small and the framework's Python is most of the step: these microseconds are steadier than the
epoch times on a shared machine, and they are what the epoch ratios are made of.

A third table (``--recording``, alone with ``--recording_only``) prices what every ``zoo fit``
records of its training: the layer dynamics (``zoo.callbacks.TrainingDynamics``: weight norms,
sampled gradient norms, dead units, ``dynamics.csv``) and the run page (``zoo.callbacks.RunPage``:
epoch times, ``report.html`` refreshed, the best checkpoint's confusion matrix at the end). LeNet-5 on
MNIST with the default callbacks as ``zoo fit`` has them (CSV logger, checkpoints, early stopping, LR
monitor; progress bar and layer summary off), a few epochs of real training and a full validation
each, with neither, with the dynamics, and with both; runs alternate in one process. The goal: both
together cost under 3 % of the training time.

    python -m benchmarks.overhead --recording_only [--repeats 3] [--recording_epochs 3] [--recording_batches N]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import resource
import tempfile
import time
import warnings
from contextlib import contextmanager

import lightning as L
import torch
from torch.nn import functional as F

import zoo
import zoo.malloc
from benchmarks.common import alternate, machine, median, table
from zoo._cuda_check import NVML_CHECK, drop_unusable_nvml_check, nvml_loadable

BARE_NVML = "bare LightningModule, NVML check on"


@contextmanager
def nvml_check(value: str | None):
    """Run with ``PYTORCH_NVML_BASED_CUDA_CHECK`` set to ``value`` (None: unset), then restore it.

    Importing Lightning sets it to 1; the zoo command unsets it for its training runs where NVML cannot
    be loaded, and so does this benchmark (see zoo._cuda_check). A hand-written loop in its own process
    never has it.
    """
    saved = os.environ.pop(NVML_CHECK, None)
    if value is not None:
        os.environ[NVML_CHECK] = value
    try:
        yield
    finally:
        os.environ.pop(NVML_CHECK, None)
        if saved is not None:
            os.environ[NVML_CHECK] = saved


class Bare(L.LightningModule):
    """The smallest LightningModule around the zoo's network: forward, loss, optimizer."""

    def __init__(self, model) -> None:
        super().__init__()
        self.net, self.mean, self.std = model.net, model.input_mean.view(1, -1, 1, 1), model.input_std.view(1, -1, 1, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net((x - self.mean) / self.std), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=1e-3)


def sides(initial, datamodule, batch_size: int, steps: int | None):
    """The ways of training one epoch (or its first ``steps`` steps) from ``initial``: the zoo, a bare
    LightningModule, the plain loop and, where NVML cannot load, the bare module with Lightning's
    NVML check switched back on (what ``zoo._cuda_check`` saves)."""
    x_all, y_all = datamodule.datasets["train"].x, datamodule.datasets["train"].y  # uint8 (N, 1, 28, 28), int64

    def trainer() -> L.Trainer:
        return L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, limit_train_batches=steps)

    def zoo_trainer() -> None:
        trainer().fit(copy.deepcopy(initial), datamodule=datamodule)

    def bare_lightning() -> None:
        trainer().fit(Bare(copy.deepcopy(initial)), datamodule=datamodule)

    def plain_loop() -> None:
        model = copy.deepcopy(initial)
        net, mean, std = model.net, model.input_mean.view(1, -1, 1, 1), model.input_std.view(1, -1, 1, 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train()
        order = torch.randperm(len(x_all))
        starts = range(0, len(order), batch_size)
        with nvml_check(None):
            for start in starts[:steps]:
                index = order[start : start + batch_size]
                # The zoo's gather (index_select), so that the ratio is the framework's cost alone.
                x = (x_all.index_select(0, index).float() / 255 - mean) / std
                loss = F.cross_entropy(net(x), y_all.index_select(0, index))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def bare_lightning_nvml_check() -> None:
        with nvml_check("1"):
            bare_lightning()

    runs = {"zoo (Lightning Trainer)": zoo_trainer, "bare LightningModule, same Trainer": bare_lightning,
            "plain PyTorch loop": plain_loop}
    if not nvml_loadable():  # what the zoo saves by unsetting Lightning's NVML check (zoo._cuda_check)
        runs[BARE_NVML] = bare_lightning_nvml_check
    return runs


def counting_faults(runs: dict, faults: dict[str, list[int]]) -> dict:
    """The same runs, each appending its minor page faults to ``faults[name]``."""

    def counted(name, fn):
        def run():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            fn()
            faults.setdefault(name, []).append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return run

    return {name: counted(name, fn) for name, fn in runs.items()}


def recording_cost(repeats: int, epochs: int, batches: int | None) -> None:
    """Print fit times of LeNet-5 on MNIST with the default callbacks, recording nothing, the layer
    dynamics, and the dynamics and the run page; and what each costs."""
    from lightning.pytorch.loggers import CSVLogger

    from zoo.callbacks import RunPage, TrainingDynamics, default_callbacks

    torch.manual_seed(0)
    initial = zoo.create_model("lenet5", mean=[0.1307], std=[0.3081], lr=1e-3)
    datamodule = zoo.create_datamodule("mnist", batch_size=128)
    folder = tempfile.mkdtemp(prefix="zoo-recording-")

    inside: list[tuple[float, float]] = []  # (seconds in the recording callbacks' code, seconds of the fit)

    def fit(dynamics: bool, run_page: bool):
        def run() -> None:
            callbacks = default_callbacks(monitor="val/acc", mode="max", progress_bar=False, summary=False,
                                          dynamics=dynamics, run_page=run_page)
            clock = time_inside([c for c in callbacks if isinstance(c, (TrainingDynamics, RunPage))])
            started = time.perf_counter()
            trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, limit_train_batches=batches or 1.0, callbacks=callbacks,
                                logger=CSVLogger(folder), enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0)
            trainer.fit(copy.deepcopy(initial), datamodule=datamodule)
            if dynamics and run_page:
                inside.append((clock[0], time.perf_counter() - started))
        return run

    runs = {"records nothing": fit(False, False), "+ layer dynamics": fit(True, False),
            "+ layer dynamics + run page": fit(True, True)}
    runs["+ layer dynamics + run page"]()  # warm-up: data, matplotlib's import and first drawing count for no side
    inside.clear()
    times = alternate(runs, repeats)
    base = times["records nothing"]
    rows = [[name, f"{median(t):.2f}", f"{min(t):.2f}", " ".join(f"{v:.2f}" for v in t),
             f"{min(t) / min(base) - 1:+.2%}", f"{median(t) / median(base) - 1:+.2%}"] for name, t in times.items()]
    per_epoch = f"{batches} batches of 128" if batches else "the whole training split (batches of 128)"
    print(f"\nWhat zoo fit records: LeNet-5, MNIST, {epochs} epochs of {per_epoch} and a full "
          f"validation each, default callbacks; {machine()}")
    print(table(["fit", "median s", "best s", "runs s", "cost (bests)", "cost (medians)"], rows))
    shares = " ".join(f"{spent / total:.2%}" for spent, total in inside)
    print(f"Time inside the two recording callbacks' own code (hooks, the gradient norms, the activation "
          f"probe, the confusion counts, the page drawings), per run with both: {shares} of the fit "
          f"({' '.join(f'{spent:.2f}' for spent, _ in inside)} s)")
    print("The goal: the dynamics and the run page together cost under 3 % of the training time")


def time_inside(callbacks: list) -> list[float]:
    """Time every method call on these callbacks (hooks and what they call, such as the forward hook
    counting the confusion matrix) into the returned one-element list, in seconds; a call made from
    inside another timed call is counted once, in the outer one."""
    clock, depth = [0.0], [0]

    def timed(method):
        def call(*args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    clock[0] += time.perf_counter() - started
        return call

    for callback in callbacks:
        for name in dir(type(callback)):
            attribute = getattr(type(callback), name)
            if callable(attribute) and not name.startswith("__") and not isinstance(attribute, type):
                setattr(callback, name, timed(getattr(callback, name)))
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--step_cost_steps", type=int, default=400, help="steps per run in the batch-2 table")
    parser.add_argument("--recording", action="store_true",
                        help="also price what zoo fit records (layer dynamics, run page); --repeats runs of each")
    parser.add_argument("--recording_only", action="store_true", help="only the table of what zoo fit records")
    parser.add_argument("--recording_epochs", type=int, default=3, help="epochs per run in the recording table")
    parser.add_argument("--recording_batches", type=int, default=None,
                        help="training batches of 128 per epoch there (default: the whole training split)")
    args = parser.parse_args()
    kept = zoo.malloc.keep_freed_memory()
    drop_unusable_nvml_check()  # as the zoo command does for its training runs (zoo.runtime.nvml_check_dropped)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available: ..." per fit
    if args.recording_only:
        recording_cost(args.repeats, args.recording_epochs, args.recording_batches)
        return
    torch.manual_seed(0)
    initial = zoo.create_model("lenet5", mean=[0.1307], std=[0.3081], lr=1e-3)

    datamodule = zoo.create_datamodule("mnist", batch_size=args.batch_size)
    datamodule.setup("fit")
    n = len(datamodule.datasets["train"])
    epoch = sides(initial, datamodule, args.batch_size, steps=None)
    epoch.pop(BARE_NVML, None)  # shown in the per-step table only
    epoch["zoo (Lightning Trainer)"]()  # warm-up: first-touch allocations and lazy imports count for no side
    faults: dict[str, list[int]] = {}
    times = alternate(counting_faults(epoch, faults), args.repeats)
    # The best run is the least disturbed one (timeit's advice); the median shows the spread's middle.
    base_median, base_best = median(times["plain PyTorch loop"]), min(times["plain PyTorch loop"])
    rows = [[name, f"{median(t):.2f}", f"{min(t):.2f}", " ".join(f"{v:.2f}" for v in t),
             f"{median(t) / base_median:.3f}", f"{min(t) / base_best:.3f}",
             f"{median(faults[name]):,.0f} / {max(faults[name]):,}"] for name, t in times.items()]
    print(f"LeNet-5, MNIST train split ({n:,} images), batch {args.batch_size}, Adam; {machine()}; "
          + ("freed memory kept for reuse (zoo.malloc)" if kept else "malloc as the system set it"))
    header = ["one epoch", "median s", "best s", "runs s", "ratio (medians)", "ratio (bests)", "page faults (median / most)"]
    print(table(header, rows))
    zoo_side, bare_side = times["zoo (Lightning Trainer)"], times["bare LightningModule, same Trainer"]
    print(f"zoo / bare LightningModule: {min(zoo_side) / min(bare_side):.3f} (bests), "
          f"{median(zoo_side) / median(bare_side):.3f} (medians); the goal is at most 1.03")

    tiny = zoo.create_datamodule("mnist", batch_size=2)
    tiny.setup("fit")
    steps = args.step_cost_steps
    costs = {name: [t / steps * 1e6 for t in runs]
             for name, runs in alternate(sides(initial, tiny, 2, steps=steps), args.repeats).items()}
    plain = min(costs["plain PyTorch loop"])
    step_us = min(times["plain PyTorch loop"]) / -(-n // args.batch_size) * 1e6  # one plain-loop step at batch_size
    rows = []
    for name, runs in costs.items():
        best, over = min(runs), min(runs) - plain
        rows.append([name, f"{best:.0f}", f"{median(runs):.0f}", f"{over:+.0f}" if over else "",
                     f"{over / step_us:.1%}" if over else ""])
    print(f"\nCost per training step at batch 2 ({steps} steps per run, best of {args.repeats}); the share is of "
          f"one {step_us / 1e3:.2f} ms plain-loop step at batch {args.batch_size}")
    print(table(["one step", "best µs", "median µs", "µs over the plain loop", "share of a step"], rows))
    if args.recording:
        recording_cost(args.repeats, args.recording_epochs, args.recording_batches)


if __name__ == "__main__":
    main()
