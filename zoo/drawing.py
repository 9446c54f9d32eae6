"""Pictures from tensors: image grids and a labelled scatter plot (torchvision and PIL, no Lightning)."""

from __future__ import annotations

import math

import torch

# The 10-colour "tab10" palette (Vega / matplotlib), one colour per class in scatter plots.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def image_grid(images, nrow: int | None = None, padding: int = 2):
    """Tile images (N, C, H, W) in [0, 1] into one picture (3, H', W'), ``nrow`` per row.

    Args:
        images: the images; any N >= 1 (the last row may be partly empty).
        nrow: images per row; None: ceil(sqrt(N)), a near-square grid.
        padding: pixels between images.
    """
    from torchvision.utils import make_grid

    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"expected images of shape (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(0, 1)
    if len(images) == 1:  # make_grid returns a lone image without its frame; keep the layout uniform
        rgb = images[0].expand(3, -1, -1) if images.shape[1] == 1 else images[0]
        return torch.nn.functional.pad(rgb, (padding,) * 4, value=1.0)
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    return make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)


def pair_grid(inputs, outputs, padding: int = 2):
    """Each input image followed by its output (e.g. reconstruction), ceil(sqrt(N)) pairs per row."""
    if inputs.shape != outputs.shape:
        raise ValueError(f"inputs and outputs differ in shape: {tuple(inputs.shape)} vs {tuple(outputs.shape)}")
    pairs = torch.stack([inputs, outputs], dim=1).flatten(0, 1)  # (2N, C, H, W): x0, y0, x1, y1, ...
    return image_grid(pairs, nrow=2 * math.ceil(math.sqrt(len(inputs))), padding=padding)


def scatter_plot(points, labels=None, size: int = 480, class_names=None):
    """A PIL scatter plot of 2-D ``points`` (N, 2), coloured by integer ``labels`` (N,), with a legend.

    Args:
        points: the coordinates, e.g. 2-D codes.
        labels: class index of each point (None: all one colour).
        size: width and height of the picture in pixels.
        class_names: legend text per class (None: the class indices).
    """
    from PIL import Image, ImageDraw

    points = points.detach().float().cpu()
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), got {tuple(points.shape)}")
    labels = labels.detach().cpu().long() if labels is not None else None
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    margin, legend_width = 20, 70
    plot_right = size - legend_width
    draw.rectangle([margin, margin, plot_right, size - margin], outline=(0, 0, 0))
    low, high = points.min(0).values, points.max(0).values
    span = (high - low).clamp_min(1e-8)
    scale = torch.tensor([plot_right - 2 * margin - 8, size - 2 * margin - 8], dtype=torch.float32)
    # Screen coordinates: x grows right, y grows up (hence the flip).
    xy = (points - low) / span * scale
    xs = margin + 4 + xy[:, 0]
    ys = size - margin - 4 - xy[:, 1]
    for i in range(len(points)):
        colour = PALETTE[int(labels[i]) % len(PALETTE)] if labels is not None else PALETTE[0]
        x, y = float(xs[i]), float(ys[i])
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    if labels is not None:
        for row, cls in enumerate(sorted(set(labels.tolist()))):
            y = margin + 14 * row
            draw.rectangle([plot_right + 10, y + 2, plot_right + 18, y + 10], fill=PALETTE[cls % len(PALETTE)])
            name = class_names[cls] if class_names is not None and cls < len(class_names) else str(cls)
            draw.text((plot_right + 22, y), str(name)[:7], fill=(0, 0, 0))
    return image
