"""How a dataset frames its images, and how an image file is brought into that frame.

Weights trained on MNIST have only ever seen light strokes on a black background, the digit's
bounding box fitted into 20x20 pixels (aspect ratio kept, antialiased) and placed in a 28x28 field
so that its centre of mass is the field's centre (LeCun et al. 1998). A photo or scan of a digit is
dark ink on light paper, anywhere on the page, at any size: resized as it is, such an image is
nothing like the training data, and the model answers with confidence all the same.

A :class:`Framing` records what a dataset's images look like; a DataModule names its framing
(``MNISTDataModule.framing = "mnist"``), a classifier adopts it when training starts (the
``input_framing`` hyperparameter), and so the weights, ``save_pretrained`` folders and checkpoints
carry it. :func:`frame_image` brings any grayscale image into MNIST's format (a framing marked
``reproduced``):

1. polarity: an image whose border is lighter than its content (dark ink on light paper) is inverted;
2. background: a smooth surface (quadratic in x and y) fitted to the border is subtracted, which
   takes out uneven lighting; the border's spread measures the noise (JPEG, paper texture);
3. content: pixels clearly above the noise, in connected parts big enough not to be specks, give
   the bounding box; contrast is stretched so that the ink is 1;
4. the box is resized (antialiased, aspect ratio kept) so that its longer side fills the framing's
   box, and pasted into the field, centred by its centre of mass or by its box.

An MNIST image goes through essentially unchanged: its border is black, its box is already 20
pixels on the longer side and its centre of mass already the field's centre. Of the 10,000 MNIST
test images, 96 % come back within 2 levels (of 255) of every pixel, the mean change is 0.3 levels,
and the shipped LeNet-5 predicts the same class for every one of them either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from zoo.errors import UsageError

PLAIN = "plain"  # no framing: the image is resized and centre-cropped as it is (zoo.data.folder.read_image)
AUTO = "auto"  # what the weights' input_framing says


class FramingError(UsageError):
    """A framing or preprocessing name that is not known; the message lists the known ones."""


@dataclass(frozen=True)
class Framing:
    """What a dataset's images look like, as the dataset's makers produced them.

    Args:
        name: the key weights record as ``input_framing``.
        title: the dataset, for messages.
        field: side of the square image, pixels.
        box: side of the square the content's bounding box is fitted into (longer side = box).
        centre: ``mass``: the centre of mass sits at the field's centre; ``box``: the bounding box does.
        background: ``dark``: light content on a black background.
        source: how the dataset's makers did it, in a sentence.
        reproduced: whether :func:`frame_image` brings image files into this format (and ``zoo infer``
            does so by default); a framing recorded only to say what the weights expect is not.
    """

    name: str
    title: str
    field: int
    box: int
    centre: Literal["mass", "box"]
    background: Literal["dark"]
    source: str
    reproduced: bool

    @property
    def summary(self) -> str:
        """One line: polarity, box, centring (``light on dark, 20x20 box in 28x28, centred by mass``)."""
        centring = "centred by mass" if self.centre == "mass" else "centred by its box"
        size = (f"{self.box}x{self.box} box in {self.field}x{self.field}" if self.box < self.field
                else f"longer side {self.box} of {self.field}x{self.field}")
        return f"light on {self.background}, {size}, {centring}"


FRAMINGS: dict[str, Framing] = {
    "mnist": Framing(
        "mnist", "MNIST", field=28, box=20, centre="mass", background="dark",
        source="NIST's binary digits were fitted into a 20x20 box keeping their aspect ratio (antialiased), then "
               "placed in a 28x28 field with their centre of mass at its centre; strokes light on black "
               "(LeCun et al. 1998)",
        reproduced=True),
    "fashion_mnist": Framing(
        "fashion_mnist", "Fashion-MNIST", field=28, box=28, centre="box", background="dark",
        source="each product photo was trimmed, its longer side resized to 28 and its shorter side padded to 28 "
               "around it, then negated and made grayscale: a light item on black, no 20x20 box and no centring "
               "by mass (Xiao, Rasul & Vollgraf 2017)",
        # Not reproduced: frame_image stretches contrast and fits to the ink, which suits MNIST's saturated
        # strokes, not grey garments: with box=28 and centring by box, alexnet_fashionmnist fell from 93.5 %
        # to 86.6 % on the first 1,500 Fashion-MNIST test images.
        reproduced=False),
}


def get_framing(name: str) -> Framing:
    """The framing called ``name`` (a key of :data:`FRAMINGS`); a clear error otherwise."""
    if name not in FRAMINGS:
        raise FramingError(f"unknown input framing {name!r}: known framings are {', '.join(FRAMINGS)}")
    return FRAMINGS[name]


def check_framing_name(name: str | None) -> None:
    """Refuse an ``input_framing`` hyperparameter that names no framing (None: unknown, allowed)."""
    if name is not None:
        get_framing(name)


def preprocessing_choices() -> tuple[str, ...]:
    """What ``zoo infer --preprocess`` takes: ``auto``, ``plain`` and the name of each reproduced framing."""
    return (AUTO, PLAIN, *(name for name, framing in FRAMINGS.items() if framing.reproduced))


def chosen_framing(preprocess: str, input_framing: str | None) -> Framing | None:
    """The framing image files are brought into, or None for the plain path.

    Args:
        preprocess: ``auto`` (the weights' ``input_framing`` if :func:`frame_image` reproduces it,
            else plain), ``plain`` (none), or the name of a reproduced framing.
        input_framing: what the weights record (None: they say nothing, so ``auto`` is plain).
    """
    if preprocess not in preprocessing_choices():
        raise FramingError(f"preprocess must be one of {', '.join(preprocessing_choices())}, got {preprocess!r}")
    if preprocess == PLAIN or (preprocess == AUTO and input_framing is None):
        return None
    framing = get_framing(input_framing if preprocess == AUTO else preprocess)
    return framing if framing.reproduced else None


# ----- the steps -------------------------------------------------------------------------------

NOISE_SIGMAS = 4.0  # content starts this many noise deviations above the background
INK_FRACTION = 0.15  # ... and at least this share of the ink's contrast (paper texture, shadows)
SPECK_SHARE = 0.05  # parts with less ink than this share of the largest part are specks
MAX_SIDE = 512  # larger images are shrunk first: a digit needs no more, and the fit stays quick


def _border(image: np.ndarray) -> np.ndarray:
    """A boolean (H, W) mask of the outer band: 1/16 of the shorter side, at least one pixel."""
    height, width = image.shape
    band = max(1, min(height, width) // 16)
    mask = np.ones((height, width), dtype=bool)
    mask[band : height - band, band : width - band] = False
    return mask


def light_on_dark(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W) floats in [0, 1], inverted if its border is lighter than the middle of its range.

    The border is the background in a photo or scan of one object; the 1st and 99th percentiles
    stand for black and white, so JPEG noise and a few bright or dark pixels do not decide.
    """
    low, high = np.percentile(image, (1, 99))
    background = float(np.median(image[_border(image)]))
    return 1.0 - image if background > (low + high) / 2 else image


def _surface_terms(ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> np.ndarray:
    """The terms of a quadratic surface at pixels (ys, xs): (n, 6), coordinates scaled to [-1, 1]."""
    y = 2 * ys / max(height - 1, 1) - 1
    x = 2 * xs / max(width - 1, 1) - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _robust_spread(residual: np.ndarray) -> float:
    """The standard deviation of Gaussian noise estimated from ``residual``'s median absolute value (1.4826 MAD)."""
    return 1.4826 * float(np.median(np.abs(residual)))


def subtract_background(image: np.ndarray) -> tuple[np.ndarray, float]:
    """``image`` (H, W) light on dark minus a quadratic surface fitted to its border, and the noise.

    Border pixels far above the border's median (content touching the edge) are left out before the
    first fit, and those the fit leaves far above it before the second; the noise is the robust
    spread of the border pixels kept.

    Returns:
        The residual (H, W), background ~0, and the noise's standard deviation.
    """
    height, width = image.shape
    ys, xs = np.nonzero(_border(image))
    values = image[ys, xs]
    terms = _surface_terms(ys.astype(np.float64), xs.astype(np.float64), height, width)
    residual = values - np.median(values)
    keep = residual <= max(3 * _robust_spread(residual), 2 / 255)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(terms[keep], values[keep], rcond=None)
        residual = values - terms @ coefficients
        spread = _robust_spread(residual[keep])
        keep = residual <= max(3 * spread, 2 / 255)
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    surface = (_surface_terms(grid_y.ravel().astype(np.float64), grid_x.ravel().astype(np.float64), height, width)
               @ coefficients).reshape(height, width)
    return image - surface, spread


def content_mask(residual: np.ndarray, noise: float) -> tuple[np.ndarray, float]:
    """The pixels (H, W) bool that belong to the content, and the ink's level.

    Content is what stands ``NOISE_SIGMAS`` noise deviations and ``INK_FRACTION`` of the ink's
    contrast above the background, in connected parts (8-neighbours) that hold at least
    ``SPECK_SHARE`` of the largest part's ink; pixels just outside those parts (one pixel) that are
    above the noise count too, so a clean image keeps its antialiased edge.
    """
    from scipy import ndimage

    floor = max(NOISE_SIGMAS * noise, 1 / 255)
    above = residual > floor
    if not above.any():
        return above, 1.0
    ink = float(np.percentile(residual[above], 95))
    strong = residual > max(floor, INK_FRACTION * ink)
    labels, count = ndimage.label(strong, structure=np.ones((3, 3)))
    if count == 0:
        return strong, ink
    mass = ndimage.sum_labels(residual, labels, index=np.arange(1, count + 1))
    parts = np.flatnonzero(mass >= SPECK_SHARE * mass.max()) + 1
    kept = np.isin(labels, parts)
    ink = float(np.percentile(residual[kept], 95))
    near = ndimage.binary_dilation(kept, structure=np.ones((3, 3)))
    return near & above, ink


def _paste(patch: torch.Tensor, framing: Framing) -> torch.Tensor:
    """``patch`` (h, w) placed in a (field, field) black field, by its centre of mass or its box."""
    field = framing.field
    height, width = patch.shape
    if framing.centre == "mass" and float(patch.sum()) > 0:
        # MNIST's convention, measured on its images: the centre of mass at pixel index 14 (of 0..27).
        rows = torch.arange(height, dtype=patch.dtype)
        cols = torch.arange(width, dtype=patch.dtype)
        total = patch.sum()
        top = round(field / 2 - float((patch.sum(1) * rows).sum() / total))
        left = round(field / 2 - float((patch.sum(0) * cols).sum() / total))
    else:
        top, left = (field - height) // 2, (field - width) // 2
    top = min(max(top, 0), field - height)  # a lopsided digit stays whole inside the field
    left = min(max(left, 0), field - width)
    out = torch.zeros(field, field, dtype=patch.dtype)
    out[top : top + height, left : left + width] = patch
    return out


def frame_image(image: np.ndarray | torch.Tensor, framing: Framing) -> torch.Tensor:
    """Bring one grayscale image into ``framing``'s format (see the module docstring).

    Args:
        image: (H, W) uint8 pixels, or floats in [0, 1]; either polarity, any size.
        framing: the format, e.g. ``FRAMINGS["mnist"]``.

    Returns:
        (field, field) uint8: light content on black, framed as ``framing`` says. An image without
        content (a blank page) gives a black field.
    """
    if not framing.reproduced:
        raise ValueError(f"{framing.title}'s framing is recorded to say what weights expect, not reproduced here: "
                         f"frame_image brings images into {', '.join(n for n, f in FRAMINGS.items() if f.reproduced)}'s")
    pixels = torch.as_tensor(image)
    if pixels.ndim != 2:
        raise ValueError(f"frame_image takes one grayscale image (H, W), got shape {tuple(pixels.shape)}")
    pixels = pixels.float().div(255) if pixels.dtype == torch.uint8 else pixels.float()
    if min(pixels.shape) < 3:
        raise ValueError(f"image of {tuple(pixels.shape)} pixels is too small to frame: at least 3x3 are needed")
    if max(pixels.shape) > MAX_SIDE:  # (H, W) -> at most MAX_SIDE on the longer side
        scale = MAX_SIDE / max(pixels.shape)
        size = [max(3, round(side * scale)) for side in pixels.shape]
        pixels = F.interpolate(pixels[None, None], size=size, mode="bilinear", antialias=True)[0, 0]
    residual, noise = subtract_background(light_on_dark(pixels.numpy().astype(np.float64)))
    mask, ink = content_mask(residual, noise)
    if not mask.any():
        return torch.zeros(framing.field, framing.field, dtype=torch.uint8)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    content = np.where(mask, np.clip(residual / ink, 0, 1), 0.0)[top:bottom, left:right]  # (h, w), ink at 1
    patch = torch.from_numpy(content).float()
    height, width = patch.shape
    scale = framing.box / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size != (height, width):
        patch = F.interpolate(patch[None, None], size=size, mode="bilinear", antialias=True)[0, 0]
    return _paste(patch.clamp(0, 1), framing).mul(255).round().to(torch.uint8)  # (field, field)
