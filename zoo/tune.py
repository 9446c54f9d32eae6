"""``zoo tune``: Lightning's learning-rate finder on a recipe.

    zoo tune --config RECIPE [fit options...] [--output DIR] [--save_recipe PATH]

It parses exactly as ``zoo fit`` does (the same recipe, model, data and trainer options), then, in
place of training, raises the learning rate from ``--min_lr`` to ``--max_lr`` over ``--num_training``
batches (Smith 2017, "Cyclical learning rates", section 3.3) with
``lightning.pytorch.tuner.Tuner.lr_find``. It draws the loss against the rate with the suggested rate
marked, prints the suggestion, and with ``--save_recipe`` writes the recipe with that ``lr``. The
model's weights are restored when the search ends, and nothing is left in the working folder.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
from pathlib import Path
from typing import Optional

import yaml
from lightning.pytorch.tuner import Tuner

from zoo.callbacks import ProgressBar
from zoo.errors import UsageError
from zoo.runtime import log_lines_dropped
from zoo.trainer_cli import ZooCLI

PICTURE = "lr_find.png"
# What Lightning's finder logs about its own workings: the temporary checkpoint it saves and restores,
# the end of its short fit, and its failure to suggest a rate, which zoo tune says in its own words.
FINDER_LINES = {
    "lightning.pytorch.utilities.rank_zero": ("Restoring states from the checkpoint path at ",
                                              "Restored all states from the checkpoint at ", "`Trainer.fit` stopped: "),
    "lightning.pytorch.tuner.lr_finder": ("Failed to compute suggestion for learning rate",),
}
FINDER_BAR = "Finding best initial lr"  # the label of the finder's own progress bar (tqdm, on stderr)


def draw_lr_curve(lrs: list[float], losses: list[float], suggestion: float | None, path: Path) -> None:
    """The loss of each batch against its learning rate (log scale), the suggestion marked, as a PNG.

    Args:
        lrs, losses: the finder's learning rates and its smoothed training losses, batch by batch.
        suggestion: the suggested rate (one of ``lrs``), or None.
        path: the PNG to write.
    """
    from matplotlib.figure import Figure  # no pyplot: nothing process-wide changes

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot(lrs, losses, color="tab:blue")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    if suggestion is not None:
        at = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i]) - math.log(suggestion)))
        axes.plot([lrs[at]], [losses[at]], "o", color="tab:red", markersize=9)
        axes.axvline(suggestion, color="tab:red", linestyle="--", linewidth=1)
        axes.set_title(f"suggested learning rate: {suggestion:.3g} (steepest fall of the loss)")
    else:
        axes.set_title("no suggestion: the loss did not fall steadily")
    finite = [loss for loss in losses if math.isfinite(loss)]
    if finite:  # a diverging end would squash the curve: show up to a few times the starting loss
        axes.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), 3 * finite[0]) * 1.05)
    axes.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")


class TuneCLI(ZooCLI):
    """``zoo tune``: the ``fit`` subcommand's parser and setup, then the learning-rate finder instead of training.

    The finder trains on ``--num_training`` batches and restores the model's weights afterwards; its
    temporary checkpoint goes to a folder of the run, and Lightning removes it. No logger, no
    checkpoints and no ``config.yaml``: only the progress bar, the picture and, if asked, the recipe.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, save_config_callback=None, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``'s parser: ``zoo tune`` parses as ``zoo fit`` does."""
        return {"fit": ZooCLI.subcommands()["fit"]}

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        # jsonargparse names a subcommand's parser "<prog> [options] fit"; its help is zoo tune's
        self._subcommand_parser.prog = "zoo tune"

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--output", type=Optional[str], default=None,
                            help=f"Folder of the picture {PICTURE} (default: <default_root_dir>/<run_name>/tune).")
        parser.add_argument("--save_recipe", type=Optional[str], default=None,
                            help="Write the recipe, with the model's lr set to the suggestion, to this YAML file.")
        parser.add_argument("--min_lr", type=float, default=1e-6, help="The learning rate the search starts at.")
        parser.add_argument("--max_lr", type=float, default=1.0, help="The learning rate the search ends at.")
        parser.add_argument("--num_training", type=int, default=100,
                            help="Training batches of the search, one learning rate each.")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        config = self.config["fit"]
        if not 0 < config.min_lr < config.max_lr:
            raise UsageError(f"--min_lr {config.min_lr} --max_lr {config.max_lr}: give 0 < min_lr < max_lr")
        if config.num_training < 2:
            raise UsageError(f"--num_training {config.num_training}: give 2 or more batches")
        if config.get("ckpt_path"):
            raise UsageError("zoo tune starts from the recipe's model: drop --ckpt_path")
        if config.get("publish"):
            raise UsageError("zoo tune trains nothing to publish: drop --publish")
        save = config.get("save_recipe")
        if save and Path(save).suffix not in (".yaml", ".yml"):
            raise UsageError(f"--save_recipe {save}: name a .yaml file")
        init_args = config.model.get("init_args") or {}
        if "lr" not in init_args:
            model = str(config.model.class_path).rsplit(".", 1)[-1]
            rates = ", ".join(sorted(key for key in init_args.keys() if key.startswith("lr"))) or "none"
            raise UsageError(f"{model} has no single learning rate 'lr' to tune (its rates: {rates}); "
                             "zoo tune finds one rate for models with one optimiser")

    def run_callbacks(self, trainer_cfg) -> list:
        return [ProgressBar()] if trainer_cfg.get("enable_progress_bar") is not False else []

    def instantiate_trainer(self, **kwargs):
        # The search is num_training steps long, whatever the recipe's epochs; a schedule fitted to the
        # run's length is built for that many steps (the finder replaces it with its own).
        # The finder's temporary checkpoint goes to default_root_dir: the picture's folder, not the user's.
        folder = self.picture_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return super().instantiate_trainer(**{"logger": False, "max_epochs": -1, "max_steps": self._option("num_training"),
                                              "default_root_dir": str(folder), **kwargs})

    def picture_dir(self) -> Path:
        output = self._option("output")
        return Path(output) if output else Path(self._root_dir()) / self._option("run_name") / "tune"

    def fit(self, model, datamodule=None, **kwargs) -> None:
        """Run the finder in place of ``Trainer.fit`` (LightningCLI runs a CLI method named as the subcommand)."""
        with log_lines_dropped(FINDER_LINES), self._finder_bar_hidden():
            finder = Tuner(self.trainer).lr_find(
                model, datamodule=datamodule, min_lr=self._option("min_lr"), max_lr=self._option("max_lr"),
                num_training=self._option("num_training"), update_attr=False)
            self.suggestion = finder.suggestion() if finder is not None else None
        if not self.trainer.is_global_zero:
            return
        picture = self.picture_dir() / PICTURE
        draw_lr_curve(finder.results["lr"], finder.results["loss"], self.suggestion, picture)
        if self.suggestion is None:
            print(f"zoo tune: no suggestion from {len(finder.results['lr'])} batches (too few, or the loss never fell "
                  f"steadily: see {picture}); try more --num_training batches or another --min_lr/--max_lr")
            return
        saved = ""
        if self._option("save_recipe"):
            saved = f"; recipe with it: {self.save_recipe(Path(self._option('save_recipe')))}"
        print(f"suggested learning rate: {self.suggestion:.3g} (plot: {picture}{saved})")

    @contextlib.contextmanager
    def _finder_bar_hidden(self):
        """Without the finder's progress bar when the run has none (``--trainer.enable_progress_bar false``).

        The finder draws its bar whatever the trainer says; it writes to ``sys.stderr``, so the search
        runs with stderr caught, and what else was written there is passed on when it ends.
        """
        if self.trainer.progress_bar_callback is not None:
            yield
            return
        caught = io.StringIO()
        try:
            with contextlib.redirect_stderr(caught):
                yield
        finally:
            for line in caught.getvalue().replace("\r", "\n").splitlines(keepends=True):
                if line.strip() and FINDER_BAR not in line:
                    sys.stderr.write(line)

    def save_recipe(self, path: Path) -> Path:
        """The parsed recipe, with the model's ``lr`` set to the suggestion, as a YAML file ``zoo fit`` runs."""
        config = self.config["fit"].clone()
        for key in ("output", "save_recipe", "min_lr", "max_lr", "num_training", "config", "run_name"):
            if key in config:
                del config[key]
        config.model.init_args.lr = float(f"{self.suggestion:.3g}")
        text = yaml.safe_dump(config.as_dict(), sort_keys=False)
        source = ", ".join(str(p) for p in self.config["fit"].get("config") or []) or "the command line"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {source} with the learning rate zoo tune suggested\n"
                        f"#   zoo fit --config {path}\n{text}")
        return path

    def after_fit(self) -> None:
        """No test after the search: nothing was trained."""
