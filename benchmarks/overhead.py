"""Framework overhead: one epoch of the zoo's LeNet-5 on MNIST through the Lightning Trainer vs a
hand-written PyTorch loop with the identical network, data tensors, batch size and optimizer.

    python -m benchmarks.overhead [--repeats 5]

All sides start from the same weights; runs alternate (zoo, bare, loop, zoo, bare, loop, ...) in
one process. The zoo side is the zoo as users run it: input validation, torchmetrics accuracy and
logging included; progress bar, checkpointing and validation off. The bare side is the smallest
LightningModule with the same network, loss and optimizer through the same Trainer: the difference
between it and the plain loop is Lightning's own cost, the rest is the zoo's.
"""

from __future__ import annotations

import argparse
import copy
import warnings

import lightning as L
import torch
from torch.nn import functional as F

import zoo
from benchmarks.common import alternate, machine, median, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    datamodule = zoo.create_datamodule("mnist", batch_size=args.batch_size)
    datamodule.setup("fit")
    x_all, y_all = datamodule.datasets["train"].x, datamodule.datasets["train"].y  # uint8 (N, 1, 28, 28), int64
    torch.manual_seed(0)
    initial = zoo.create_model("lenet5", mean=[0.1307], std=[0.3081], lr=1e-3)

    def zoo_trainer() -> None:
        model = copy.deepcopy(initial)
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0)
        trainer.fit(model, datamodule=datamodule)

    class Bare(L.LightningModule):
        def __init__(self, model) -> None:
            super().__init__()
            self.net, self.mean, self.std = model.net, model.input_mean.view(1, -1, 1, 1), model.input_std.view(1, -1, 1, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net((x - self.mean) / self.std), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def bare_lightning() -> None:
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0)
        trainer.fit(Bare(copy.deepcopy(initial)), datamodule=datamodule)

    def plain_loop() -> None:
        model = copy.deepcopy(initial)
        net, mean, std = model.net, model.input_mean, model.input_std
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train()
        order = torch.randperm(len(x_all))
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            x = (x_all[index].float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
            loss = F.cross_entropy(net(x), y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    zoo_trainer()  # warm-up: first-touch allocations and lazy imports count for neither side
    times = alternate({"zoo (Lightning Trainer)": zoo_trainer, "bare LightningModule, same Trainer": bare_lightning,
                       "plain PyTorch loop": plain_loop}, args.repeats)
    # The best run is the least disturbed one (timeit's advice); the median shows the spread's middle.
    base_median, base_best = median(times["plain PyTorch loop"]), min(times["plain PyTorch loop"])
    rows = [[name, f"{median(t):.2f}", f"{min(t):.2f}", " ".join(f"{v:.2f}" for v in t),
             f"{median(t) / base_median:.3f}", f"{min(t) / base_best:.3f}"] for name, t in times.items()]
    print(f"LeNet-5, MNIST train split ({len(x_all):,} images), batch {args.batch_size}, Adam; {machine()}")
    print(table(["one epoch", "median s", "best s", "runs s", "ratio (medians)", "ratio (bests)"], rows))


if __name__ == "__main__":
    main()
