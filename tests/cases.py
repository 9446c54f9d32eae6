"""How the generic model checks (tests/test_every_model.py) exercise each registered model.

Each model family adds a ``tests/cases_<family>.py`` module with a ``CASES`` list of
:class:`ModelCase`; every registered model must appear in exactly one case.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class ModelCase:
    name: str  # registry name
    hparams: dict = field(default_factory=dict)
    # the model's input; a tuple is passed as several arguments (a conditional GAN's noise and labels)
    make_input: Callable[[], torch.Tensor | tuple] = lambda: torch.rand(4, 1, 28, 28)
    # a tiny LightningDataModule for a fast_dev_run fit
    make_datamodule: Callable[[], object] | None = None
    # a scalar that depends on every parameter, for the gradient check
    scalar: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] = lambda model, x: model(x).float().square().mean()
    # what model(x) must return for make_input(): a shape tuple (None: not checked)
    output_shape: tuple | None = None
    id: str = ""

    def __post_init__(self):
        self.id = self.id or self.name


def call(model: torch.nn.Module, inputs) -> torch.Tensor:
    """``model(inputs)``, or ``model(*inputs)`` for a tuple of inputs."""
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def all_cases() -> list[ModelCase]:
    cases = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        cases += importlib.import_module(f"tests.{path.stem}").CASES
    return cases
