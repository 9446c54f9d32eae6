"""Frozen features computed once against computed every epoch: VGG-16 as a feature extractor
(``finetune: feature_extractor``) on a folder of generated images, time to the same validation accuracy.

    python -m benchmarks.frozen_features [--images 2000] [--size 224] [--epochs 30] [--uncached_epochs 1]
    python -m benchmarks.frozen_features --quick      # a small net on 60 small images, seconds
    python -m benchmarks.frozen_features --weights IMAGENET1K_V1 --pooled_size 7 --hidden_size 4096

The images are shapes (ellipse, box or triangle) at a random place and size on a noisy background of
a random colour, written as JPEG files into a temporary folder and read by
``zoo.data.ImageFolderDataModule`` (20 % held out for validation, no augmentation). No pretrained weights
can be downloaded here, so by default VGG-16 starts from its random initialisation (torchvision's).
Thirteen frozen random conv layers keep little of an image but its colours: with ``--classes shape``
(the shape is the class) the classifier stays at chance, and the output says that no time to an
accuracy can be compared, only the seconds per epoch; with ``--classes colour`` (the default: the
shape's colour is mostly red, green or blue, the class) the classifier learns, slowly, as one on
pretrained features does. With torchvision's ImageNet weights in ``$TORCH_HOME``, ``--weights
IMAGENET1K_V1 --pooled_size 7 --hidden_size 4096`` measures the same on pretrained features. Without
weights the classifier is the usual one for a small dataset: the last conv stage's maps averaged to one
vector (``pooled_size`` 1), then FC layers of 256 units (``--pooled_size 7 --hidden_size 4096`` gives
VGG-16's own 120-million-parameter classifier, whose optimiser step alone costs seconds on a CPU,
cached or not). Both sides start from the same weights and see the same batches.

The cached side (:class:`zoo.callbacks.FrozenFeatures`) trains ``--epochs`` epochs; its clock includes
computing the cache. The target is the validation accuracy it reaches by its last epoch, and its time
to target is the time to the first epoch that reaches it. The uncached side computes the same numbers
epoch by epoch, so it reaches the target at the same epoch; it runs ``--uncached_epochs`` epochs (all of
them with ``--quick``), the benchmark checks that their metrics equal the cached run's, and, if that
is fewer epochs than the target needs, its time to target is DERIVED: its measured mean time per epoch
times the epochs needed, as the output says.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from benchmarks.common import machine, table

SHAPES = ("ellipse", "box", "triangle")
COLOURS = ("reds", "greens", "blues")
LEARNED_MARGIN = 0.15  # a validation accuracy closer than this to chance says the classifier learned nothing


def write_images(root: Path, count: int, size: int, seed: int, classes: str = "colour") -> None:
    """``count`` JPEG files of ``size`` pixels under ``root/<class>/``: one shape each, at a random place and
    size, on a background of random colour and noise. ``classes="colour"``: a random shape whose colour is
    mostly red, green or blue, the class; ``classes="shape"``: the shape is the class, in any colour."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    noise = torch.Generator().manual_seed(seed)
    for i in range(count):
        label = i % len(SHAPES)
        shape = SHAPES[label] if classes == "shape" else rng.choice(SHAPES)
        folder = root / (shape if classes == "shape" else COLOURS[label])
        folder.mkdir(parents=True, exist_ok=True)
        background = torch.tensor([rng.randrange(256) for _ in range(3)], dtype=torch.float32)
        pixels = (background + 40 * torch.randn(size, size, 3, generator=noise)).clamp(0, 255).to(torch.uint8)
        image = Image.fromarray(pixels.numpy())
        draw = ImageDraw.Draw(image)
        side = rng.uniform(0.3, 0.7) * size
        x, y = rng.uniform(0, size - side), rng.uniform(0, size - side)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if classes == "colour":  # the class's channel bright, the other two dim
            colour = tuple(rng.randrange(160, 256) if c == label else rng.randrange(120) for c in range(3))
        if shape == "ellipse":
            draw.ellipse((x, y, x + side, y + side), fill=colour)
        elif shape == "box":
            draw.rectangle((x, y, x + side, y + side), fill=colour)
        else:
            draw.polygon([(x + side / 2, y), (x, y + side), (x + side, y + side)], fill=colour)
        image.save(folder / f"{i:05d}.jpg", quality=90)


class EpochClock(L.Callback):
    """The seconds since fit started and the validation metrics, at the end of each training epoch's validation."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()  # before the frozen features (FrozenFeatures comes later in the list)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            self.rows.append({"seconds": time.perf_counter() - self.started, **metrics})


def fit(root: Path, cached: bool, epochs: int, args) -> list[dict[str, float]]:
    """Train VGG-16 as a feature extractor on ``root`` for ``epochs`` epochs; its per-epoch clock and metrics."""
    import zoo
    from zoo.callbacks import FrozenFeatures
    from zoo.data import ImageFolderDataModule

    data = ImageFolderDataModule(str(root), image_size=args.size, batch_size=args.batch_size, hflip=False, seed=0)
    L.seed_everything(args.seed, verbose=False)
    # Pretrained weights bring their own normalisation; a random start uses the folder's statistics.
    start = ({"weights": args.weights, "new_head": True} if args.weights
             else {"mean": list(data.mean), "std": list(data.std)})
    model = zoo.create_model("vgg16", num_classes=len(SHAPES), image_size=args.size, finetune="feature_extractor",
                             lr=args.lr, width_divisor=args.width_divisor, hidden_size=args.hidden_size,
                             pooled_size=args.pooled_size, **start)
    clock = EpochClock()
    trainer = L.Trainer(accelerator="auto", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[clock, *([FrozenFeatures()] if cached else [])])
    trainer.fit(model, datamodule=data)
    return clock.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images generated (a fifth of them validate)")
    parser.add_argument("--size", type=int, default=224, help="side of the images, in pixels")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the cached run")
    parser.add_argument("--uncached_epochs", type=int, default=1,
                        help="epochs of the uncached run at most (it stops at the target if that comes first)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width_divisor", type=int, default=1, help="VGG's conv widths divided by this (1: VGG-16)")
    parser.add_argument("--pooled_size", type=int, default=1, help="side of the average pool before FC6 (7: VGG-16)")
    parser.add_argument("--hidden_size", type=int, default=256, help="width of FC6 and FC7 (4096: VGG-16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", choices=("colour", "shape"), default="colour",
                        help="what tells the three classes apart: the shape's colour (mostly red, green or blue), "
                             "which random frozen features keep, or the shape itself, which they lose")
    parser.add_argument("--weights", type=str, default=None,
                        help="start VGG-16 from these weights: IMAGENET1K_V1 (torchvision's, from $TORCH_HOME), a "
                             "state-dict file or a save_pretrained folder; they need --pooled_size 7 --hidden_size "
                             "4096, the layout they were trained with (default: torchvision's random initialisation)")
    parser.add_argument("--folder", type=str, default=None, help="where the images go (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="60 images of 32 pixels, VGG-16 with narrow layers, 3 epochs on both sides: a check, not a measure")
    args = parser.parse_args()
    if args.quick:
        args.images, args.size, args.epochs, args.uncached_epochs = 60, 32, 3, 3
        args.width_divisor, args.hidden_size = 16, 64

    with tempfile.TemporaryDirectory(prefix="frozen-features-") as temporary:
        root = Path(args.folder or temporary) / args.classes
        started = time.perf_counter()
        write_images(root, args.images, args.size, args.seed, args.classes)
        print(f"{args.images} images of {args.size} px in {root} ({time.perf_counter() - started:.0f} s); "
              f"{machine()}", flush=True)
        cached = fit(root, True, args.epochs, args)
        target = cached[-1]["val/acc"]
        needed = next(i for i, row in enumerate(cached) if row["val/acc"] >= target) + 1
        uncached = fit(root, False, args.epochs if args.quick else min(args.uncached_epochs, needed), args)

    rows = [[epoch + 1, f"{row['val/acc']:.4f}", f"{row['val/loss']:.5f}", f"{row['seconds']:.1f}",
             *((f"{uncached[epoch]['val/acc']:.4f}", f"{uncached[epoch]['val/loss']:.5f}", f"{uncached[epoch]['seconds']:.1f}")
               if epoch < len(uncached) else ("", "", ""))]
            for epoch, row in enumerate(cached)]
    print(table(["epoch", "cached val/acc", "val/loss", "s since start", "uncached val/acc", "val/loss", "s since start"],
                rows))
    for mine, theirs in zip(cached, uncached):
        if not (mine["val/acc"] == theirs["val/acc"] and math.isclose(mine["val/loss"], theirs["val/loss"], rel_tol=1e-4)):
            raise SystemExit(f"the cached and uncached runs differ: {mine} against {theirs}")
    print(f"\nthe uncached run's {len(uncached)} epoch(s) give the cached run's validation accuracy and loss "
          "(loss to 1e-4 relative)")

    print("\n" + time_to_target(cached, uncached))


def time_to_target(cached: list[dict[str, float]], uncached: list[dict[str, float]]) -> str:
    """What the cache saves, from both runs' per-epoch clocks and metrics: the time to the cached run's last
    validation accuracy on both sides (the uncached side's DERIVED from its mean epoch when it ran fewer
    epochs than that needs), or, where the classifier stayed near chance, only the seconds per epoch."""
    target = cached[-1]["val/acc"]
    needed = next(i for i, row in enumerate(cached) if row["val/acc"] >= target) + 1
    cached_epoch = (cached[-1]["seconds"] - cached[0]["seconds"]) / max(len(cached) - 1, 1)
    per_epoch = uncached[-1]["seconds"] / len(uncached)
    lines = [f"target: validation accuracy {target:.4f} (the cached run's last epoch), first reached at epoch {needed}"]
    chance = 1 / len(SHAPES)  # three classes either way (COLOURS too)
    if target < chance + LEARNED_MARGIN:
        lines.append(f"the classifier did not learn: {target:.4f} is within {LEARNED_MARGIN} of chance ({chance:.4f}). "
                     "The frozen features do not separate the classes, so there is no time to an accuracy to compare; "
                     "what the cache saves is the time of each epoch:")
        lines.append(table(["side", "s per epoch", "how"], [
            ["frozen features cached", f"{cached_epoch:.1f} (the first, computing the cache: {cached[0]['seconds']:.1f})",
             "measured"],
            ["uncached", f"{per_epoch:.1f}", "measured"],
        ]))
        lines.append(f"\ncached is {per_epoch / cached_epoch:.1f}x faster per epoch after the first")
        return "\n".join(lines)
    cached_time = cached[needed - 1]["seconds"]
    if len(uncached) >= needed:
        uncached_time, how = uncached[needed - 1]["seconds"], "measured"
    else:
        uncached_time = per_epoch * needed
        how = (f"DERIVED: measured {per_epoch:.1f} s per epoch (mean of {len(uncached)}) x {needed} epochs; "
               "the epochs compute the same numbers as the cached run's")
    lines.append(table(["side", "time to target s", "s per epoch", "how"], [
        ["frozen features cached", f"{cached_time:.1f}", f"{cached_epoch:.1f} (first, with the cache: {cached[0]['seconds']:.1f})",
         "measured"],
        ["uncached", f"{uncached_time:.1f}", f"{per_epoch:.1f}", how],
    ]))
    lines.append(f"\ncached is {uncached_time / cached_time:.1f}x faster to the target, {per_epoch / cached_epoch:.1f}x "
                 "per epoch after the first")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
