"""``zoo experiment NAME``: the classic experiments of a deep-learning course, each one command that
trains its variants and draws its figure.

    zoo experiment optimizers|overfitting|batchnorm|init|width [--output DIR]

Each variant but the initialisation's is a shipped recipe run as ``zoo fit --config RECIPE`` runs it,
its run folder under ``DIR/runs/`` (with ``metrics.csv``); the figure is ``DIR/NAME.png`` and the
numbers it shows are ``DIR/NAME.json``. The initialisation experiment trains nothing: it draws the
activations of deep MLPs at initialisation on a batch of MNIST.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import UsageError
from zoo.runs import metrics_rows


@dataclass(frozen=True)
class Variant:
    """One run of an experiment: its label, the shipped recipe and command-line settings on top of it."""

    label: str
    recipe: str
    settings: tuple[str, ...] = ()

    @property
    def run_name(self) -> str:
        """The folder of its runs: the label in lower case, words joined by ``_`` (no spaces to quote)."""
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")


def read_metrics(run: Path) -> dict[str, list[tuple[int, float]]]:
    """A run's ``metrics.csv`` (its newest version) as key -> [(step, value), ...] in logged order."""
    versions = sorted(run.glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    series: dict[str, list[tuple[int, float]]] = {}
    for row in metrics_rows(versions[-1] / "metrics.csv"):
        step = int(row.pop("step"))
        row.pop("epoch", None)
        for key, value in row.items():
            series.setdefault(key, []).append((step, float(value)))
    return series


def run_variants(variants: list[Variant], runs: Path, quiet: bool) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Train every variant as ``zoo fit`` does; returns label -> its metrics. A run that stops at a
    non-finite loss (a diverged one) keeps what it logged before."""
    from zoo.callbacks import NonFiniteLossError
    from zoo.trainer_cli import ZooCLI, resolve_user_arguments

    results = {}
    for variant in variants:
        print(f"zoo experiment: training {variant.label} (zoo fit --config {variant.recipe} {' '.join(variant.settings)})",
              file=sys.stderr)
        argv = ["fit", "--config", variant.recipe, "--trainer.default_root_dir", str(runs), "--run_name", variant.run_name,
                "--test_after_fit", "false", *variant.settings]
        if quiet:
            argv += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
        command_line, sys.argv[1:] = sys.argv[1:], []  # LightningCLI warns when it is given args beside the command's own
        try:
            with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
                ZooCLI(args=resolve_user_arguments(argv), command_line=argv)
        except NonFiniteLossError as err:
            print(f"zoo experiment: {variant.label} diverged: {err}", file=sys.stderr)
        finally:
            sys.argv[1:] = command_line
        results[variant.label] = read_metrics(runs / variant.run_name)
    return results


def _last(series: list[tuple[int, float]]) -> float:
    return series[-1][1] if series else float("nan")


def _mean_of_last(series: list[tuple[int, float]], n: int) -> float:
    values = [value for _, value in series[-n:]]
    return sum(values) / len(values) if values else float("nan")


def _figure(width: float, height: float, columns: int = 1, rows: int = 1):
    from matplotlib.figure import Figure  # no pyplot: nothing process-wide changes

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.subplots(rows, columns, squeeze=False)


def plot_series(axes, series: list[tuple[int, float]], **style) -> None:
    axes.plot([s for s, _ in series], [v for _, v in series], **style)


# ----- the experiments ------------------------------------------------------------------------------

OPTIMIZERS = [Variant("SGD", "exp_optim_sgd"), Variant("SGD + momentum", "exp_optim_sgd_momentum"),
              Variant("RMSprop", "exp_optim_rmsprop"), Variant("Adam", "exp_optim_adam")]


def optimizers(output: Path, quiet: bool) -> dict:
    """SGD, SGD with momentum, RMSprop and Adam on the same MLP, data and number of steps."""
    results = run_variants(OPTIMIZERS, output / "runs", quiet)
    figure, axes = _figure(7, 4.5)
    for label, metrics in results.items():
        plot_series(axes[0][0], metrics["train/loss_step"], label=label)
    axes[0][0].set(xlabel="training step", ylabel="training loss", yscale="log",
                   title="Gradient-descent variants: MLP on 3,000 MNIST images, 3 epochs")
    axes[0][0].legend()
    figure.savefig(output / "optimizers.png", bbox_inches="tight")
    return {label: {"final_train_loss": _mean_of_last(m["train/loss_step"], 5), "val_acc": _last(m["val/acc"])}
            for label, m in results.items()}


OVERFITTING = [Variant("no regularisation", "exp_overfit_none"), Variant("dropout 0.5", "exp_overfit_dropout"),
               Variant("L2 (weight decay 0.01)", "exp_overfit_l2"), Variant("early stopping", "exp_overfit_early_stopping")]


OVERFIT_EPOCHS = 20  # the recipes' max_epochs


def overfitting(output: Path, quiet: bool) -> dict:
    """An MLP 256-256 on 500 labelled images, without a cure and with dropout, L2 or early stopping."""
    results = run_variants(OVERFITTING, output / "runs", quiet)
    figure, axes = _figure(12, 7, columns=2, rows=2)
    for panel, (label, metrics) in zip(axes.flat, results.items()):
        epochs = list(range(1, len(metrics["val/loss"]) + 1))
        panel.plot(epochs, [v for _, v in metrics["train/loss_epoch"]], label="training loss")
        panel.plot(epochs, [v for _, v in metrics["val/loss"]], label="validation loss")
        panel.set(title=label, xlabel="epoch", ylabel="loss", xlim=(0, OVERFIT_EPOCHS + 1))
        panel.legend()
    figure.subplots_adjust(hspace=0.35)  # room for the lower panels' titles under the upper panels' axes
    figure.suptitle("Overfitting and its cures: MLP 256-256 on 500 MNIST images")
    figure.savefig(output / "overfitting.png", bbox_inches="tight")
    return {label: {"epochs": len(m["val/loss"]), "train_loss": _last(m["train/loss_epoch"]),
                    "val_loss": _last(m["val/loss"]), "gap": _last(m["val/loss"]) - _last(m["train/loss_epoch"]),
                    "val_acc": _last(m["val/acc"])}
            for label, m in results.items()}


BATCHNORM = [Variant("without batch norm", "exp_batchnorm_off"), Variant("with batch norm", "exp_batchnorm_on")]


def batchnorm(output: Path, quiet: bool) -> dict:
    """A deep sigmoid MLP trained by plain SGD at a high learning rate, with and without batch norm."""
    results = run_variants(BATCHNORM, output / "runs", quiet)
    figure, axes = _figure(12, 4, columns=2)
    for label, metrics in results.items():
        plot_series(axes[0][0], metrics["train/loss_step"], label=label)
        plot_series(axes[0][1], metrics["val/acc"], label=label, marker="o")
    axes[0][0].set(xlabel="training step", ylabel="training loss", title="Training loss")
    axes[0][1].set(xlabel="training step", ylabel="validation accuracy", title="Validation accuracy", ylim=(0, 1))
    for panel in axes[0]:
        panel.legend()
    figure.suptitle("Batch normalisation: 5 sigmoid layers of 256, SGD at learning rate 1.0")
    figure.savefig(output / "batchnorm.png", bbox_inches="tight")
    return {label: {"val_acc": _last(m["val/acc"]), "final_train_loss": _mean_of_last(m["train/loss_step"], 5)}
            for label, m in results.items()}


INIT_SCHEMES = ("small", "xavier", "kaiming")
INIT_DEPTH = 8


def init(output: Path, quiet: bool) -> dict:
    """The activations of 8-layer tanh and ReLU MLPs at initialisation, on 1,000 MNIST test images."""
    import torch

    import zoo
    from zoo.data.vision import MNISTDataModule

    images = MNISTDataModule().load_split(train=False)[0][:1000].float() / 255  # (1000, 1, 28, 28)
    spreads, figure_rows = {}, []
    for activation in ("tanh", "relu"):
        for scheme in INIT_SCHEMES:
            torch.manual_seed(0)
            model = zoo.create_model("mlp", hidden_sizes=[256] * INIT_DEPTH, activation=activation, init=scheme,
                                     mean=[0.1307], std=[0.3081])
            layers = model.eval().hidden_activations(images)
            spreads[f"{activation} {scheme}"] = [float(h.std()) for h in layers]
            figure_rows.append((activation, scheme, layers))
    figure, axes = _figure(14, 8, columns=len(INIT_SCHEMES), rows=2)
    for panel, (activation, scheme, layers) in zip(axes.flat, figure_rows):
        for depth, h in enumerate(layers, start=1):
            values = h.flatten().numpy()
            low, high = (-1, 1) if activation == "tanh" else (0, max(float(values.max()), 1e-6))
            panel.hist(values, bins=50, range=(low, high), histtype="step", density=True, label=f"layer {depth}")
        panel.set(title=f"{activation}, {scheme} init: std {spreads[f'{activation} {scheme}'][0]:.2g} (layer 1) -> "
                        f"{spreads[f'{activation} {scheme}'][-1]:.2g} (layer {INIT_DEPTH})", yscale="log",
                  xlabel="activation", ylabel="density")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Activations at initialisation, {INIT_DEPTH} layers of 256, on 1,000 MNIST images")
    figure.savefig(output / "init.png", bbox_inches="tight")
    return {name: {"std_per_layer": values} for name, values in spreads.items()}


WIDTHS = (4, 16, 64, 1024)
WIDTH = [Variant(f"{w} units", "mlp_function", ("--model.init_args.hidden_sizes", f"[{w}]", "--trainer.max_epochs", "30"))
         for w in WIDTHS]


def width(output: Path, quiet: bool) -> dict:
    """One hidden layer of 4, 16, 64 and 1,024 units fitted to the same 1-D function (``mlp_function``)."""
    import torch

    from zoo.checkpointing import model_from_checkpoint
    from zoo.data.function import FUNCTIONS

    results = run_variants(WIDTH, output / "runs", quiet)
    figure, axes = _figure(12, 4, columns=2)
    x = torch.linspace(-math.pi, math.pi, 400).unsqueeze(1)
    axes[0][1].plot(x.squeeze(1), FUNCTIONS["wave"](x).squeeze(1), color="black", linewidth=3, label="target")
    for variant in WIDTH:
        plot_series(axes[0][0], results[variant.label]["val/mse"], label=variant.label, marker="o", markersize=3)
        checkpoint = sorted((output / "runs" / variant.run_name).glob("version_*/checkpoints/last.ckpt"))[-1]
        model = model_from_checkpoint(checkpoint)
        with torch.no_grad():
            axes[0][1].plot(x.squeeze(1), model.eval()(x).squeeze(1), label=variant.label)
    axes[0][0].set(xlabel="training step", ylabel="validation MSE", yscale="log", title="Error as training goes")
    axes[0][1].set(xlabel="x", ylabel="y", title="The fitted functions")
    for panel in axes[0]:
        panel.legend()
    figure.suptitle("Universal approximation: one hidden ReLU layer of growing width, y = sin(3x) exp(-x^2/5)")
    figure.savefig(output / "width.png", bbox_inches="tight")
    return {variant.label: {"val_mse": _last(results[variant.label]["val/mse"])} for variant in WIDTH}


EXPERIMENTS: dict[str, Callable[[Path, bool], dict]] = {
    "optimizers": optimizers, "overfitting": overfitting, "batchnorm": batchnorm, "init": init, "width": width,
}


def run_experiment(name: str, output: Path, quiet: bool = False) -> tuple[Path, dict]:
    """Run the experiment ``name`` into ``output``: returns its figure's path and its numbers (also in NAME.json)."""
    if name not in EXPERIMENTS:
        from zoo.names import did_you_mean

        raise UsageError(f"no experiment named {name!r}.{did_you_mean(name, EXPERIMENTS)} "
                         f"The experiments: {', '.join(EXPERIMENTS)}")
    output.mkdir(parents=True, exist_ok=True)
    numbers = EXPERIMENTS[name](output, quiet)
    (output / f"{name}.json").write_text(json.dumps(numbers, indent=2) + "\n")
    return output / f"{name}.png", numbers
