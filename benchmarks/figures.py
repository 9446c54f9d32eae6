"""The pictures in docs/models.md (linked from the README), drawn from the shipped weights with the zoo's own image helpers.

    ZOO_DATA_DIR=<data root> python -m benchmarks.figures [--out benchmarks/figures]

Writes gan_samples.png, vae_samples.png (64 samples each), cgan_samples.png and cvae_samples.png
(10 x 10 grids of `cgan_mnist`'s and `cvae_mnist`'s samples, one row per digit), reconstructions.png (test images next to `ae_mnist`'s
reconstructions) and denoising.png (noisy test images next to `dae_mnist`'s output). Seeded: the
same weights give the same pictures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

import zoo
from zoo.callbacks.images import class_grid
from zoo.drawing import image_grid, pair_grid
from zoo.data import MNISTDataModule


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures"), help="output folder")
    parser.add_argument("--data_dir", default=None, help="data root (default: $ZOO_DATA_DIR)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    for name in ("gan_mnist", "vae_mnist"):
        samples = zoo.load_pretrained(name).sample(64, generator=torch.Generator().manual_seed(0))
        save_image(image_grid(samples, nrow=16), out / f"{name.split('_')[0]}_samples.png")
    for name in ("cgan_mnist", "cvae_mnist"):
        samples = class_grid(zoo.load_pretrained(name), 10, generator=torch.Generator().manual_seed(0))
        save_image(image_grid(samples, nrow=10), out / f"{name.split('_')[0]}_samples.png")

    x = MNISTDataModule(data_dir=args.data_dir).load_split(train=False)[0][:24].float() / 255  # (24, 1, 28, 28)
    save_image(pair_grid(x, zoo.load_pretrained("ae_mnist")(x)), out / "reconstructions.png")
    dae = zoo.load_pretrained("dae_mnist")
    noisy = dae.corrupt(x, torch.Generator().manual_seed(0))
    save_image(pair_grid(noisy, dae(noisy)), out / "denoising.png")
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} to {out}")


if __name__ == "__main__":
    main()
