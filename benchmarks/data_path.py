"""Data path: images per second of the zoo's in-memory MNIST / Fashion-MNIST pipeline vs
torchvision's per-item ``ToTensor`` + ``DataLoader`` pipeline, one shuffled epoch each.

    python -m benchmarks.data_path [--batch_size 128]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

import zoo
from zoo.data import resolve_data_dir
from benchmarks.common import alternate, machine, median, table


def drain(loader) -> int:
    seen = 0
    for x, _ in loader:
        seen += x.shape[0]
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = str(resolve_data_dir(None))  # the zoo's data-root rule: $ZOO_DATA_DIR, else the default
    print(f"batch {args.batch_size}; {machine()}")
    rows = []
    for name, tv_class in (("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)):
        datamodule = zoo.create_datamodule(name, batch_size=args.batch_size)
        datamodule.setup("fit")
        n = len(datamodule.datasets["train"])
        torchvision_set = tv_class(root, train=True, download=False, transform=transforms.ToTensor())
        candidates = {
            "zoo in-memory": lambda: drain(datamodule.train_dataloader()),
            "torchvision ToTensor, 0 workers": lambda: drain(DataLoader(torchvision_set, args.batch_size, shuffle=True)),
            "torchvision ToTensor, 2 workers": lambda: drain(
                DataLoader(torchvision_set, args.batch_size, shuffle=True, num_workers=2)),
        }
        if torch.cuda.is_available():
            resident = zoo.create_datamodule(name, batch_size=args.batch_size)
            resident.setup("fit")
            resident.move_to("cuda")  # what on_device=True does under a GPU Trainer
            candidates["zoo in-memory, on the GPU"] = lambda: drain(resident.train_dataloader())
        times = alternate(candidates, args.repeats)
        zoo_rate = n / median(times["zoo in-memory"])
        for label, t in times.items():
            counted = n if label.startswith("zoo") else len(torchvision_set)
            rate = counted / median(t)
            rows.append([name, label, f"{rate:,.0f}", f"{zoo_rate / rate:.1f}x"])
    print(table(["dataset", "pipeline", "images/s", "zoo speed-up"], rows))


if __name__ == "__main__":
    main()
