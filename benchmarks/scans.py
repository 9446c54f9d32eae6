"""Your own images read as the weights expect them: ``zoo infer``'s accuracy on image files of digits,
with ``--preprocess plain`` (resize and centre-crop only) and with the default (framed as MNIST).

    python -m benchmarks.scans [--data_dir DIR] [--weights lenet5_mnist] [--scans 1000] [--out DIR]

Three sets of image files, made here from real data and read back from disk by
:func:`zoo.predict_files`, the code ``zoo infer`` runs:

- **scans**: MNIST *test* digits made into scans: inverted to dark ink on light paper, the 28x28
  digit scaled to 60-160 pixels and pasted at a random place on a 256x256 page of uneven brightness
  with paper noise, saved as JPEG (quality 70-95);
- **printed**: the digits 0-9 in 12 fonts that matplotlib ships, dark on light, at 3 sizes and
  random places on 128x128 pages of uneven brightness, saved as JPEG and PNG in turn;
- **MNIST test PNGs**: the 10,000 MNIST test images as they are (light on black), as PNG files.

Everything is seeded: the same command writes the same files and prints the same table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from benchmarks.common import machine, table

# 12 fonts matplotlib ships (matplotlib.get_data_path()/fonts/ttf): sans, serif, mono, bold, TeX's Computer Modern.
FONTS = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSansMono",
         "DejaVuSansMono-Bold", "STIXGeneral", "STIXGeneralBol", "cmr10", "cmss10", "cmtt10", "cmb10")
FONT_SIZES = (36, 60, 96)  # pixels: digits about 26-70 pixels tall on a 128 page


def read_mnist_test(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's test images (10000, 28, 28) uint8 and labels (10000,), from torchvision's layout."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = data_dir / "MNIST" / "raw"
    if not (raw / "t10k-images-idx3-ubyte").exists():
        raise SystemExit(f"MNIST's test files are not in {raw}: set ZOO_DATA_DIR or pass --data_dir (the folder "
                         "holding MNIST/raw/)")
    return read_image_file(str(raw / "t10k-images-idx3-ubyte")), read_label_file(str(raw / "t10k-labels-idx1-ubyte"))


def paper(side: int, rng: np.random.Generator) -> np.ndarray:
    """A light page (side, side) float: a brightness gradient (uneven lighting) and grainy paper noise."""
    y, x = np.mgrid[0:side, 0:side] / (side - 1) - 0.5
    level = rng.uniform(190, 245)
    tilt_x, tilt_y, bulge = rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-25, 10)
    grain = rng.normal(0, rng.uniform(2, 7), (side, side))
    fibres = np.asarray(Image.fromarray(rng.normal(0, 12, (side // 4, side // 4)).astype(np.float32), mode="F")
                        .resize((side, side), Image.BICUBIC))  # blotches a few pixels wide
    return level + tilt_x * x + tilt_y * y + bulge * (x * x + y * y) + grain + 0.5 * fibres


def ink_on(page: np.ndarray, alpha: np.ndarray, top: int, left: int, ink: float) -> np.ndarray:
    """``page`` with dark ink of level ``ink`` laid where ``alpha`` (h, w) in [0, 1] says, at (top, left)."""
    out = page.copy()
    h, w = alpha.shape
    region = out[top : top + h, left : left + w]
    out[top : top + h, left : left + w] = region + alpha * (ink - region)
    return out


def save(page: np.ndarray, path: Path, rng: np.random.Generator) -> None:
    image = Image.fromarray(np.clip(page, 0, 255).round().astype(np.uint8))
    if path.suffix == ".jpg":
        image.save(path, quality=int(rng.integers(70, 96)))
    else:
        image.save(path)


def make_scans(images: torch.Tensor, labels: torch.Tensor, out: Path, seed: int = 0) -> dict[Path, str]:
    """Write each digit (N, 28, 28) as a JPEG scan (see the module docstring); returns file -> true class."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (digit, label) in enumerate(zip(images.numpy(), labels.tolist())):
        size = int(rng.integers(60, 161))
        alpha = np.asarray(Image.fromarray(digit).resize((size, size), Image.BICUBIC), dtype=np.float64) / 255
        page = paper(256, rng)
        top, left = (int(rng.integers(0, 256 - size + 1)) for _ in range(2))
        path = out / f"scan_{i:05d}.jpg"
        save(ink_on(page, np.clip(alpha, 0, 1), top, left, rng.uniform(10, 80)), path, rng)
        truth[path] = str(label)
    return truth


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def make_printed(out: Path, seed: int = 0) -> dict[Path, str]:
    """Write the digits 0-9 in each of ``FONTS`` at each of ``FONT_SIZES``; returns file -> true class."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth, side = {}, 128
    for font_name in FONTS:
        for font_size in FONT_SIZES:
            font = ImageFont.truetype(str(font_dir() / f"{font_name}.ttf"), font_size)
            for digit in range(10):
                glyph = Image.new("L", (side, side), 0)
                ImageDraw.Draw(glyph).text((0, 0), str(digit), fill=255, font=font)
                left, top, right, bottom = glyph.getbbox()
                alpha = np.asarray(glyph.crop((left, top, right, bottom)), dtype=np.float64) / 255
                h, w = alpha.shape
                y, x = int(rng.integers(4, side - h - 3)), int(rng.integers(4, side - w - 3))
                suffix = ".jpg" if (digit + font_size) % 2 else ".png"
                path = out / f"{font_name}_{font_size}_{digit}{suffix}"
                save(ink_on(paper(side, rng), alpha, y, x, rng.uniform(10, 80)), path, rng)
                truth[path] = str(digit)
    return truth


def write_pngs(images: torch.Tensor, labels: torch.Tensor, out: Path) -> dict[Path, str]:
    """Write each image (N, 28, 28) uint8 unchanged as a PNG; returns file -> true class."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (image, label) in enumerate(zip(images.numpy(), labels.tolist())):
        path = out / f"mnist_{i:05d}.png"
        Image.fromarray(image).save(path)
        truth[path] = str(label)
    return truth


def accuracy(model, truth: dict[Path, str], preprocess: str) -> float:
    """The share of the files in ``truth`` that :func:`zoo.predict_files` reads as their class."""
    from zoo.infer import predict_files

    rows, _ = predict_files(model, list(truth), top_k=1, preprocess=preprocess)
    return sum(row["class"] == truth[Path(row["path"])] for row in rows) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("ZOO_DATA_DIR"), help="MNIST root (default: $ZOO_DATA_DIR)")
    parser.add_argument("--weights", default="lenet5_mnist", help="shipped weights or a save_pretrained folder")
    parser.add_argument("--scans", type=int, default=1000, help="how many MNIST test digits become scans (the first N)")
    parser.add_argument("--mnist", type=int, default=10000, help="how many MNIST test images are written as PNG")
    parser.add_argument("--out", default=None, help="keep the image files in this folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set ZOO_DATA_DIR or pass --data_dir: the folder holding MNIST/raw/")
    import zoo

    images, labels = read_mnist_test(Path(args.data_dir))
    model = zoo.load_pretrained(args.weights)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        sets = {
            f"scans ({args.scans} MNIST test digits, JPEG)": make_scans(images[: args.scans], labels[: args.scans],
                                                                     root / "scans"),
            f"printed ({len(FONTS)} fonts x {len(FONT_SIZES)} sizes x 10 digits)": make_printed(root / "printed"),
            f"MNIST test PNGs ({args.mnist})": write_pngs(images[: args.mnist], labels[: args.mnist], root / "mnist"),
        }
        print(f"{args.weights}; files read by zoo.predict_files; {machine()}")
        rows = []
        for name, truth in sets.items():
            plain, framed = accuracy(model, truth, "plain"), accuracy(model, truth, "auto")
            rows.append([name, f"{100 * plain:.2f} %", f"{100 * framed:.2f} %"])
    print(table(["image files", "--preprocess plain", "default (auto)"], rows))


if __name__ == "__main__":
    main()
