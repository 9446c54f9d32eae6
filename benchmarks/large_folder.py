"""Image folders larger than the memory budget: the zoo's decoded-on-disk path vs torchvision's
``ImageFolder`` with a ``DataLoader`` of 2 workers, on one generated folder, in one run.

Generates ``--images`` JPEG photos-like images (smooth colour fields with noise, 256 x 320 px, two
classes) whose decoded 224 px crops take at least 3x ``--budget``, then runs each side in a process of
its own (so that its memory is its own) for ``--epochs`` shuffled passes over the training images:

- zoo: ``ImageFolderDataModule(memory_budget=BUDGET)``: the first pass decodes every image once into a
  file on disk (DataLoader workers in parallel), then every pass reads its batches from that file;
- torchvision: ``ImageFolder`` with ``Resize(224)``, ``CenterCrop(224)``, ``ToTensor()`` and a
  ``DataLoader`` of 2 workers, which decodes every image in every pass.

Both hand out float ``(64, 3, 224, 224)`` batches in [0, 1], as training takes them (no model: this is
the data path alone). It
prints images per second of the first and of the later passes and each process's peak resident memory
(VmHWM; for the zoo, while it decodes and while it passes over the images) above what it held before
its data path was built (the passes' peak is taken after one batch read, which pages torch's code in); and the largest peak of a worker process (a forked
worker shares the parent's pages, which count in its own resident memory too). The page
cache the kernel keeps of the decoded file is not the process's: the kernel reclaims it when needed.

    python -m benchmarks.large_folder [--images 2000] [--budget 100MB] [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, table

BATCH = 64
SIZE = 224


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Start VmHWM again from the current resident memory (Linux: ``5`` into ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def children_peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def make_folder(root: Path, images: int, seed: int = 0) -> None:
    """``images`` JPEGs in two class folders under ``root/train`` and 8 a class under ``root/val``."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    for split, count in (("train", images), ("val", 16)):
        for i in range(count):
            label = i % 2
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            field = torch.rand(3, 4, 5, generator=generator) * 200 + 20
            field[label] += 35  # class 1 is redder, class 0 ... less so: something to learn
            image = torch.nn.functional.interpolate(field[None], size=(256, 320), mode="bicubic", align_corners=False)[0]
            image = (image + torch.randn(image.shape, generator=generator) * 12).clamp(0, 255).byte()
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.jpg", quality=90)


def drain(loader) -> int:
    """Pass over ``loader``, reading every value of every batch as training would (a batch a worker
    hands over is only paged into this process when it is read)."""
    seen = 0
    for x, _ in loader:
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, SIZE, SIZE), (x.dtype, x.shape)
        assert 0 <= float(x.sum()) <= x.numel()
        seen += x.shape[0]
        del x  # before the next batch is made, as a training step lets go of its batch
    return seen


def warm_up(loader) -> None:
    """Read one batch and let it go: torch's code for the batch's operations is paged in from its
    libraries on first use, and would otherwise count as the data's memory."""
    x, _ = next(iter(loader))
    assert float(x.sum()) >= 0


def passes(loader, epochs: int) -> tuple[int, list[float]]:
    """Images a pass and the seconds of each pass over ``loader``; the peak memory counts from here on
    (after a batch that pages torch's code in)."""
    warm_up(loader)
    reset_peak_rss()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        seen = drain(loader)
        times.append(time.perf_counter() - started)
    return seen, times


def run_zoo(root: Path, budget: str, epochs: int, cache: Path) -> dict:
    from zoo.data.folder import ImageFolderDataModule

    start_rss = rss_mb()
    dm = ImageFolderDataModule(str(root / "train"), val_root=str(root / "val"), image_size=SIZE, batch_size=BATCH,
                               memory_budget=budget, cache_dir=str(cache))
    assert dm.on_disk, f"the folder decodes to {dm.decoded_bytes} bytes, within the budget {budget}: nothing to measure"
    started = time.perf_counter()
    dm.prepare_data()
    dm.setup("fit")
    decoded = time.perf_counter() - started
    decode_peak = peak_rss_mb()
    seen, times = passes(dm.train_dataloader(), epochs)  # the loader zoo fit trains from
    return {"images": seen, "decode_s": decoded, "epoch_s": times, "start_rss": start_rss, "decode_peak_rss": decode_peak,
            "peak_rss": peak_rss_mb(),
            "workers_peak_rss": children_peak_rss_mb(), "decoded_bytes": dm.decoded_bytes, "budget": dm.memory_budget}


def run_torchvision(root: Path, epochs: int) -> dict:
    from torchvision import datasets, transforms

    start_rss = rss_mb()
    folder = datasets.ImageFolder(str(root / "train"), transform=transforms.Compose([
        transforms.Resize(SIZE), transforms.CenterCrop(SIZE), transforms.ToTensor()]))
    loader = torch.utils.data.DataLoader(folder, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
    seen, times = passes(loader, epochs)
    return {"images": seen, "epoch_s": times, "start_rss": start_rss, "peak_rss": peak_rss_mb(),
            "workers_peak_rss": children_peak_rss_mb()}


def side(name: str, root: Path, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.large_folder", "--side", name, "--root", str(root),
               "--budget", args.budget, "--epochs", str(args.epochs)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{name} side failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="training images to generate")
    parser.add_argument("--budget", default="100MB", help="the zoo's memory budget (--data.memory_budget)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training images")
    parser.add_argument("--quick", action="store_true", help="a small folder, for a smoke test")
    parser.add_argument("--side", choices=["zoo", "torchvision"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # decoding is per image; the DataLoader workers are the parallelism
    if args.side:
        root = Path(args.root)
        print(json.dumps(run_zoo(root, args.budget, args.epochs, root / "cache") if args.side == "zoo"
                         else run_torchvision(root, args.epochs)))
        return
    if args.quick:
        args.images, args.budget, args.epochs = 96, "3MB", 2
    with tempfile.TemporaryDirectory(prefix="zoo-large-folder-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        make_folder(root, args.images)
        print(f"generated {args.images} training JPEGs in {time.perf_counter() - started:.0f} s; {machine()}")
        zoo_side, tv_side = side("zoo", root, args), side("torchvision", root, args)
    n = zoo_side["images"]
    decoded, budget = zoo_side["decoded_bytes"], zoo_side["budget"]
    first_zoo = zoo_side["decode_s"] + zoo_side["epoch_s"][0]
    later = lambda s: s["epoch_s"][1:] or s["epoch_s"]  # noqa: E731
    zoo_peak = max(zoo_side["decode_peak_rss"], zoo_side["peak_rss"]) - zoo_side["start_rss"]
    rows = [
        ["zoo, decoded on disk", f"{n / first_zoo:.0f} (decoding included)", f"{n / min(later(zoo_side)):.0f}",
         f"{zoo_peak:.0f} (decoding {zoo_side['decode_peak_rss'] - zoo_side['start_rss']:.0f}, passes "
         f"{zoo_side['peak_rss'] - zoo_side['start_rss']:.0f})", f"{zoo_side['workers_peak_rss']:.0f}"],
        ["torchvision ImageFolder, 2 workers", f"{n / tv_side['epoch_s'][0]:.0f}", f"{n / min(later(tv_side)):.0f}",
         f"{tv_side['peak_rss'] - tv_side['start_rss']:.0f}", f"{tv_side['workers_peak_rss']:.0f}"],
    ]
    print(f"\n{n} images at {SIZE} px decode to {decoded / 2**20:.0f} MiB = {decoded / budget:.1f}x the zoo's memory budget "
          f"of {budget / 2**20:.0f} MiB; batches of {BATCH}, {args.epochs} passes")
    print(table(["data path", "first pass img/s", "later passes img/s", "peak RSS above imports, MiB",
                 "largest worker's peak RSS, MiB"], rows))
    batch = BATCH * 3 * SIZE * SIZE * (4 + 1) / 2**20  # the batch in flight: float32, and the uint8 rows it is made from
    print(f"later passes: zoo / torchvision = {min(later(tv_side)) / min(later(zoo_side)):.1f}x. The zoo's peak: "
          f"{zoo_peak:.0f} MiB, {'within' if zoo_peak <= budget / 2**20 + batch else 'OVER'} its budget of "
          f"{budget / 2**20:.0f} MiB plus the {batch:.0f} MiB of the batch in flight (the model's input), for "
          f"{decoded / 2**20:.0f} MiB of decoded images")


if __name__ == "__main__":
    main()
