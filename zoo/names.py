"""Near misses of names a user typed: the "did you mean" of the zoo command's error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean X?`` for the choice closest to a mistyped ``name``; empty if none is close.

    Args:
        name: what the user typed.
        choices: the valid names.
    """
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:  # a class name for a registry name and back: LeNet5 for lenet5
        close = [c for c in choices if c.lower() == name.lower()]
    return f" Did you mean {close[0]}?" if close else ""
