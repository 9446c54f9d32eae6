"""A model's constructor arguments checked from one table: each rule is declared once, beside the
others, and :func:`check_arguments` applies them all in one place, so ``__init__`` holds no checks of
its own and every message has the same form: what the argument must be, and what it got."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import UsageError


@dataclass(frozen=True)
class Rule:
    """What one argument must be: ``holds(value)`` is true for the values it may take; otherwise the
    error reads "<name> must <must>, got <value>"."""

    name: str
    must: str
    holds: Callable[[Any], bool]

    def problem(self, values: Mapping[str, Any]) -> str | None:
        value = values[self.name]
        return None if self.holds(value) else f"{self.name} must {self.must}, got {value!r}"


@dataclass(frozen=True)
class Together:
    """A rule of several arguments: ``refused(values)`` is true for a combination that cannot work, and
    ``message`` says what to change."""

    refused: Callable[[Mapping[str, Any]], bool]
    message: str

    def problem(self, values: Mapping[str, Any]) -> str | None:
        return self.message if self.refused(values) else None


def at_least(name: str, low: float, why: str = "") -> Rule:
    """``name`` >= ``low`` (``why``, e.g. " (0: off)", follows the bound in the message)."""
    return Rule(name, f"be >= {low}{why}", lambda value: value >= low)


def in_range(name: str, low: float, high: float, why: str = "") -> Rule:
    """``low`` <= ``name`` < ``high``."""
    return Rule(name, f"be in [{low}, {high}){why}", lambda value: low <= value < high)


def one_of(name: str, choices: Iterable[str]) -> Rule:
    """``name`` is one of ``choices``."""
    choices = tuple(choices)
    return Rule(name, f"be one of {', '.join(choices)}", lambda value: value in choices)


def check_arguments(values: Mapping[str, Any], rules: Iterable[Rule | Together]) -> None:
    """Refuse the first of ``rules`` that ``values`` (argument name -> value) break, with a UsageError."""
    for rule in rules:
        problem = rule.problem(values)
        if problem is not None:
            raise UsageError(problem)
