"""The recipe of ``recipes/lenet5_mnist_fast.yaml`` written by hand in plain PyTorch: the baseline of
``benchmarks/time_to_accuracy.py``.

    python -m benchmarks.handwritten_lenet5 [--data_dir DIR] [--epochs 2] [--hand_adamw] [--stamps]

Same LeNet-5 (ReLU after max-pooling, as the zoo's; C1 padded to 28 x 28), same data (MNIST's
training split cut into 55,000/5,000 train/validation images by the same seeded permutation, inputs
normalised by MNIST's mean and std), same optimisation (AdamW, peak rate 0.01, weight decay 5e-4,
one-cycle schedule stepped per batch, label smoothing 0.1, batch 256, 2 epochs, shuffled by a
seeded permutation, channels-last convolutions), validation after every epoch, and the weights of
the best validation epoch tested on the 10,000 test images: with the defaults it computes what
``zoo fit`` of that recipe computes and prints the same ``test/acc``. It imports nothing of the zoo
or of Lightning.

The options make it other hand-written runs: ``--epochs 1.75 --hand_adamw`` is the fastest found to
reach 99 % (benchmarks/README.md), with an AdamW written out below instead of ``torch.optim``'s.
"""

from __future__ import annotations

import argparse
import copy
import math
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
    # ReLU after max-pooling: the same function as before it, on a quarter of the elements (as the zoo's LeNet-5)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.MaxPool2d(2), nn.ReLU(),  # (N, 16, 5, 5)
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


class HandAdamW:
    """AdamW (Loshchilov & Hutter 2019) in a few tensor ops: ``torch.optim`` imports ``torch._dynamo``
    the first time an optimizer is built, about a second on a small CPU, which a script can skip."""

    def __init__(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params]
        self.param_groups = [{"lr": lr, "betas": betas}]  # what the one-cycle schedule below sets
        self.weight_decay, self.eps, self.steps = weight_decay, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        lr, (beta1, beta2) = self.param_groups[0]["lr"], self.param_groups[0]["betas"]
        correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        for p, m, v in zip(self.params, self.m, self.v):
            p.mul_(1 - lr * self.weight_decay)
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(m, (v / correction2).sqrt_().add_(self.eps), value=-lr / correction1)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def one_cycle(step: int, total: int, peak: float) -> tuple[float, float]:
    """(learning rate, beta1) of ``torch.optim.lr_scheduler.OneCycleLR``'s defaults at ``step``: cosine
    from peak/25 up to the peak over 30 % of the run, then down to peak/25e4; beta1 cycles 0.95 -> 0.85."""
    warm = 0.3 * total - 1
    if step <= warm:
        t, (lr0, lr1), (b0, b1) = step / warm, (peak / 25, peak), (0.95, 0.85)
    else:
        t, (lr0, lr1), (b0, b1) = (step - warm) / (total - 1 - warm), (peak, peak / 25e4), (0.85, 0.95)
    blend = (1 + math.cos(math.pi * t)) / 2
    return lr1 + (lr0 - lr1) * blend, b1 + (b0 - b1) * blend


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
    parser.add_argument("--epochs", type=float, default=2, help="may end inside an epoch (1.75), validated there too")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate")
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True,
                        help="convolutions in channels-last memory format")
    parser.add_argument("--hand_adamw", action="store_true", help="the AdamW and one-cycle schedule above, not torch.optim's")
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
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    steps_per_epoch = -(-len(train_x) // args.batch_size)
    total_steps = math.ceil(args.epochs * steps_per_epoch)
    if args.hand_adamw:
        optimizer = HandAdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
        schedule = None
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total_steps)
    best_acc, best_state = -1.0, None
    step = 0
    for epoch in range(math.ceil(args.epochs)):
        model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(epoch))
        for images, labels in batches(train_x, train_y, args.batch_size, order):
            if step == total_steps:
                break
            if schedule is None:
                optimizer.param_groups[0]["lr"], beta1 = one_cycle(step, total_steps, args.lr)
                optimizer.param_groups[0]["betas"] = (beta1, 0.999)
            images = images.contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(images), labels, label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
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
