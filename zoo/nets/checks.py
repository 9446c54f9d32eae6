"""Checks of the arguments that several nets share, each said once: what was wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence

IMAGE_CHANNELS = (1, 3)


def check_widths(name: str, widths: Sequence[int], count: int | None = None, empty: bool = True) -> list[int]:
    """``widths`` (layer sizes such as ``hidden_sizes``) as ints, refused unless every one is positive,
    there are ``count`` of them (None: any number) and, unless ``empty``, at least one."""
    values = [int(w) for w in widths]
    if any(w < 1 for w in values) or (count is not None and len(values) != count) or (not empty and not values):
        how_many = f"{count} " if count is not None else "" if empty else "one or more "
        raise ValueError(f"{name} must be {how_many}positive layer widths, got {list(widths)}")
    return values


def check_image_channels(in_channels: int) -> int:
    """``in_channels`` of an image net: 1 (grayscale) or 3 (RGB)."""
    if in_channels not in IMAGE_CHANNELS:
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    return in_channels
