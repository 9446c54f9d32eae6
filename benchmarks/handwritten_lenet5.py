"""The recipe of ``recipes/lenet5_mnist_fast.yaml`` written by hand in plain PyTorch: the baseline of
``benchmarks/time_to_accuracy.py``.

    python -m benchmarks.handwritten_lenet5 [--data_dir DIR] [--epochs 3] [--stamps]

Same LeNet-5 (ReLU, max pooling, C1 padded to 28 x 28), same data (MNIST's training split cut into
55,000/5,000 train/validation images by the same seeded permutation, inputs normalised by MNIST's
mean and std), same optimisation (AdamW, peak rate 0.01, weight decay 5e-4, one-cycle schedule
stepped per batch, batch 256, 3 epochs, shuffled by a seeded permutation), validation after every
epoch, and the weights of the best validation epoch tested on the 10,000 test images. It imports
nothing of the zoo or of Lightning and prints ``test/acc = 0.9912`` when done.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.1307, 0.3081
STAMP = "time_to_accuracy stamp"  # the lines benchmarks/time_to_accuracy.py --phases reads


def stamp(stage: str) -> None:
    """Print the wall clock at ``stage`` on stderr (with ``--stamps``; ``zoo fit`` gets a callback that does it)."""
    print(f"{STAMP} {time.time():.4f} {stage}", file=sys.stderr, flush=True)


def read_idx(path: Path) -> torch.Tensor:
    """An idx file of MNIST (big-endian header: magic, then one int32 per dimension) as a uint8 tensor."""
    data = path.read_bytes()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).view(shape)


def load(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images = read_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte").unsqueeze(1)  # (N, 1, 28, 28)
    labels = read_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte").long()
    return images, labels


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 5, 5)
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, order: torch.Tensor | None = None):
    """(images in [0, 1] normalised, labels) batches; in ``order`` when given."""
    n = len(x)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size] if order is not None else torch.arange(start, min(start + batch_size, n))
        images = x.index_select(0, index).float().div_(255).sub_(MEAN).div_(STD)
        yield images, y.index_select(0, index)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    model.eval()
    correct = sum(int((model(images).argmax(1) == labels).sum()) for images, labels in batches(x, y, batch_size))
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("ZOO_DATA_DIR"), help="MNIST root (default: $ZOO_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--stamps", action="store_true", help="print the wall clock at each stage on stderr")
    args = parser.parse_args()
    mark = stamp if args.stamps else (lambda stage: None)
    mark("imports done")
    if not args.data_dir:
        raise SystemExit("set ZOO_DATA_DIR or pass --data_dir: the folder holding MNIST/raw/")
    root = Path(args.data_dir)

    torch.manual_seed(0)
    x, y = load(root, train=True)
    split = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    val_x, val_y = x[split[:5000]], y[split[:5000]]
    train_x, train_y = x[split[5000:]], y[split[5000:]]
    test_x, test_y = load(root, train=False)
    mark("data loaded")

    model = lenet5()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=5e-4)
    steps = args.epochs * -(-len(train_x) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=steps)
    best_acc, best_state = -1.0, None
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(epoch))
        for images, labels in batches(train_x, train_y, args.batch_size, order):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        mark("training epoch done")
        val_acc = accuracy(model, val_x, val_y, args.batch_size)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
        print(f"epoch {epoch}: val/acc = {val_acc:.4f}")
        mark("validation done")
    model.load_state_dict(best_state)
    print(f"test/acc = {accuracy(model, test_x, test_y, args.batch_size):.4f}")
    mark("test done")


if __name__ == "__main__":
    main()
