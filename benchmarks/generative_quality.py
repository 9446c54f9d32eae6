"""GANs vs VAE on MNIST: Fréchet distance and mode coverage under one protocol (see zoo/quality.py).

    ZOO_DATA_DIR=<data root> python -m benchmarks.generative_quality [--samples 10000] [--seed 0]

Protocol: ``--samples`` images from ``model.sample(n)`` after ``torch.manual_seed(seed)`` for each
shipped generative model (weights missing from the manifest are reported as such), compared with the
10,000 MNIST test images in the 84-d penultimate features of the shipped ``lenet5_mnist``; coverage is
the share of each digit among the samples as classified by the same network. A class-conditional
model draws every digit equally often (``sample(n)`` cycles through the classes), and its label
accuracy is the share of samples the network classifies as the digit asked for. For reference, the
first ``--samples`` real training images go through the same measurement (the floor of the scale).
"""

from __future__ import annotations

import argparse

import torch

import zoo
from zoo.data.vision import MNISTDataModule
from zoo.quality import SampleQuality

GENERATIVE_WEIGHTS = ("gan_mnist", "cgan_mnist", "vae_mnist", "cvae_mnist")
CHUNK = 1000


def measure(quality: SampleQuality, real: torch.Tensor, fake: torch.Tensor,
            labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Fréchet distance and coverage of ``fake`` against ``real`` (both (N, 1, 28, 28) in [0, 1]); with
    ``labels``, the classes ``fake`` was generated for, also the label accuracy."""
    quality.reset()
    for chunk in real.split(CHUNK):
        quality.update(chunk, real=True)
    label_chunks = labels.split(CHUNK) if labels is not None else [None] * len(fake.split(CHUNK))
    for chunk, chunk_labels in zip(fake.split(CHUNK), label_chunks):
        quality.update(chunk, real=False, labels=chunk_labels)
    return quality.compute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000, help="generated images per model")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed before sampling")
    parser.add_argument("--data_dir", default=None, help="data root (default: $ZOO_DATA_DIR)")
    args = parser.parse_args()

    data = MNISTDataModule(data_dir=args.data_dir)
    test = data.load_split(train=False)[0].float() / 255  # (10000, 1, 28, 28)
    candidates = {"real MNIST training images": (data.load_split(train=True)[0][: args.samples].float() / 255, None)}
    shipped = zoo.list_pretrained()
    for name in GENERATIVE_WEIGHTS:
        if name not in shipped:
            print(f"{name}: no shipped weights in the manifest, skipped")
            continue
        model = zoo.load_pretrained(name)
        num_classes = model.hparams.get("num_classes")
        labels = None if num_classes is None else torch.arange(args.samples) % num_classes  # what sample(n) draws
        torch.manual_seed(args.seed)
        with torch.no_grad():
            candidates[f"`{name}` ({type(model).__name__})"] = (model.sample(args.samples).float().clamp(0, 1), labels)

    quality = SampleQuality()
    print(f"\n{args.samples:,} samples vs the 10,000 MNIST test images, features of `lenet5_mnist`\n")
    print("| images | Fréchet distance (LeNet-5 F6) | least common digit | most common digit | digit asked for "
          "| share of digits 0-9 (%) |")
    print("|---|---:|---:|---:|---:|---|")
    for label, (images, labels) in candidates.items():
        r = measure(quality, test, images, labels)
        shares = " ".join(f"{100 * s:.1f}" for s in r["shares"].tolist())
        asked = "" if labels is None else f"{100 * r['label_acc'].item():.2f}%"
        print(f"| {label} | {r['fid_lenet'].item():.2f} | {100 * r['coverage_min'].item():.1f}% "
              f"| {100 * r['coverage_max'].item():.1f}% | {asked} | {shares} |")


if __name__ == "__main__":
    main()
