"""The shipped recipes: one YAML per shipped weight and demo, run by name (``zoo fit --config lenet5_mnist``).

They live in the repository's top-level ``recipes/`` folder, which a wheel installs as ``zoo/_recipes``
(as ``weights/`` installs as ``zoo/_weights``). Reading them needs neither torch nor Lightning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from zoo.errors import UsageError
from zoo.names import did_you_mean
from zoo.shipped import shipped_dir

SUFFIX = ".yaml"


class RecipeNotFoundError(UsageError, LookupError):
    """No shipped recipe has the name asked for; the message lists the names and a near miss."""


def shipped_recipes_dir() -> Path:
    """The folder of the recipes shipped with the package (:func:`zoo.shipped.shipped_dir`)."""
    return shipped_dir("recipes")


def list_recipes() -> list[str]:
    """Names of the shipped recipes, e.g. ``lenet5_mnist`` (what ``zoo fit --config NAME`` accepts)."""
    return sorted(p.stem for p in shipped_recipes_dir().glob(f"*{SUFFIX}"))


def recipe_path(name: str) -> Path:
    """The file of a shipped recipe.

    Args:
        name: the recipe's name, with or without ``.yaml`` (``zoo recipes`` lists them).

    Raises:
        RecipeNotFoundError: no recipe has that name; the message names the close ones and all of them.
    """
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    path = shipped_recipes_dir() / f"{stem}{SUFFIX}"
    if path.is_file():
        return path
    names = list_recipes()
    raise RecipeNotFoundError(f"no recipe named {name!r}.{did_you_mean(stem, names)} "
                              f"Shipped recipes: {', '.join(names)} (`zoo recipes` describes them)")


def resolve_config(value: str) -> str:
    """What ``--config VALUE`` reads: an existing file as given, else the shipped recipe of that name.

    Args:
        value: what the user passed to ``--config``: a file's path or a shipped recipe's name.

    Raises:
        RecipeNotFoundError: ``VALUE`` is neither a file nor a shipped recipe's name.
    """
    if Path(value).is_file():
        return value
    if "/" in value or "\\" in value:  # a path the user typed: a recipe name has no folder
        names = list_recipes()
        stem = Path(value).stem
        hint = (f" A shipped recipe has that name: --config {stem}." if stem in names
                else did_you_mean(stem, names).replace("Did you mean ", "Did you mean the shipped recipe "))
        raise RecipeNotFoundError(f"--config {value}: no such file.{hint} `zoo recipes` lists the shipped ones")
    return str(recipe_path(value))


@dataclass(frozen=True)
class RecipeInfo:
    """What ``zoo recipes`` shows of one recipe.

    Args:
        name: the recipe's name (its file name without ``.yaml``).
        summary: the first sentence of the recipe's opening comment.
        model: the class it trains; data: the DataModule it trains on.
        weights: the shipped weights published from it (from the manifest's ``recipe`` fields).
        result: their test metrics, formatted; fit_seconds: how long their training took.
    """

    name: str
    summary: str
    model: str
    data: str
    weights: tuple[str, ...]
    result: str
    fit_seconds: float | None


def _summary(text: str, limit: int = 100) -> str:
    """The first sentence of the recipe's opening comment (cut at ``limit`` characters)."""
    comment = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("#   zoo "):  # the comment ends at the command line
            break
        comment.append(line.lstrip("#").strip())
    sentence = re.split(r"(?<=\.)\s", " ".join(comment), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _class_name(section) -> str:
    class_path = section.get("class_path", "") if isinstance(section, dict) else str(section or "")
    return class_path.rsplit(".", 1)[-1] or "-"


def recipe_command(name: str) -> str:
    """The command that runs the shipped recipe ``name``: ``zoo fit --config NAME``."""
    return f"zoo fit --config {name}"


def made_by(entry: dict, names: list[str]) -> str | None:
    """The shipped recipe a manifest entry's ``recipe`` command runs (by name or by path), if any."""
    match = re.search(r"--config[ =](\S+)", entry.get("recipe") or "")
    if not match:
        return None
    stem = Path(match.group(1)).name.removesuffix(SUFFIX)
    return stem if stem in names else None


def describe_recipes(manifest: dict[str, dict]) -> list[RecipeInfo]:
    """Every shipped recipe with what it trains and, for the weights published from it, their result and time.

    Args:
        manifest: the shipped weights' manifest (:func:`zoo.weights.read_manifest`).
    """
    names = list_recipes()
    published: dict[str, list[str]] = {}
    for weights_name, entry in sorted(manifest.items()):
        recipe = made_by(entry, names)
        if recipe:
            published.setdefault(recipe, []).append(weights_name)
    infos = []
    for name in names:
        text = (shipped_recipes_dir() / f"{name}{SUFFIX}").read_text()
        config = yaml.safe_load(text) or {}
        weights = tuple(published.get(name, ()))
        entries = [manifest[w] for w in weights]
        result = "; ".join(", ".join(f"{k} {v:.4f}" for k, v in sorted(e["metrics"].items())) for e in entries)
        seconds = [e.get("training", {}).get("fit_seconds") for e in entries]
        infos.append(RecipeInfo(name=name, summary=_summary(text), model=_class_name(config.get("model")),
                                data=_class_name(config.get("data")), weights=weights, result=result,
                                fit_seconds=next((s for s in seconds if s is not None), None)))
    return infos


def format_duration(seconds: float) -> str:
    """``812`` -> ``13 min 32 s``; ``9.3`` -> ``9 s``."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
