"""The run page's cost: LeNet-5 on MNIST trained with the default callbacks, with and without the
run page (``zoo.callbacks.RunPage``: epoch times, ``report.html`` refreshed, the best checkpoint's
confusion matrix at the end), runs alternating in one process.

    python -m benchmarks.run_page [--epochs 3] [--repeats 3] [--train_batches 100]

Each run is a real ``Trainer.fit`` with the CSV logger, checkpoints, early stopping and the LR
monitor, as ``zoo fit`` has them; the progress bar and the layer summary are off on both sides.
The goal: the page costs under 3 % of the training time.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import warnings

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

import zoo
from benchmarks.common import alternate, machine, median, table
from zoo._cuda_check import drop_unusable_nvml_check
from zoo.callbacks import default_callbacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_batches", type=int, default=100, help="training batches per epoch (of 128 images)")
    args = parser.parse_args()
    drop_unusable_nvml_check()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.manual_seed(0)
    initial = zoo.create_model("lenet5", mean=[0.1307], std=[0.3081], lr=1e-3)
    datamodule = zoo.create_datamodule("mnist", batch_size=128)
    root = tempfile.mkdtemp(prefix="run_page_bench_")

    def fit(with_page: bool):
        def run() -> None:
            callbacks = default_callbacks(monitor="val/acc", mode="max", progress_bar=False, summary=False, run_page=with_page)
            trainer = L.Trainer(accelerator="cpu", max_epochs=args.epochs, limit_train_batches=args.train_batches,
                                callbacks=callbacks, logger=CSVLogger(root, name="page" if with_page else "none"),
                                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
            trainer.fit(copy.deepcopy(initial), datamodule=datamodule)
        return run

    sides = {"default callbacks": fit(False), "default callbacks + run page": fit(True)}
    sides["default callbacks + run page"]()  # warm-up: matplotlib's import and first drawing count for no side
    times = alternate(sides, args.repeats)
    base = median(times["default callbacks"])
    rows = [[name, f"{median(t):.2f}", " ".join(f"{v:.2f}" for v in t), f"{median(t) / base:.3f}"] for name, t in times.items()]
    print(f"LeNet-5, MNIST, {args.epochs} epochs of {args.train_batches} batches of 128 and a full validation; {machine()}")
    print(table(["fit", "median s", "runs s", "ratio (medians)"], rows))


if __name__ == "__main__":
    main()
