"""The training subcommands of the ``zoo`` command: ``zoo fit|validate|test|predict``.

They are Lightning's own ``LightningCLI``; the recipe's monitored key drives the shared callbacks
(:func:`zoo.callbacks.default_callbacks`). :mod:`zoo.cli` imports this module only for these
subcommands, so that ``zoo list`` and ``zoo --help`` do not wait for Lightning to import.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Optional

import lightning
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from zoo.callbacks import default_callbacks
from zoo.checkpointing import AtomicCheckpointIO, LastCheckpoint, checkpoint_dir
from zoo.models.base import ZooModule
from zoo.models.gan import GAN, decoder_start
from zoo.models.supervised import SupervisedModule
from zoo.pretrained import load_into, resolve_for, settings_from

# Registered model and DataModule classes must be imported so that short names (--model LeNet5) resolve.
import zoo.data  # noqa: E402,F401
import zoo.models  # noqa: E402,F401

ZOO_ONLY_FLAGS = ("--publish", "--weights_dir")
RUNS_DIR = "runs"  # default_root_dir when the user gives none
CKPT_NAMES = ("last", "best", "hpc")  # not files: "last" the zoo resolves (ZooCLI.before_fit), the others Lightning


class UsageError(RuntimeError):
    """A command-line setting that cannot work; the message says what to do. Printed without a traceback."""


class CheckpointError(UsageError):
    """A checkpoint file cannot be read; nothing was loaded from it."""


def check_checkpoint_file(ckpt_path) -> dict | None:
    """Refuse a ``--ckpt_path`` that is missing, truncated or not a checkpoint, before anything runs.

    Returns the checkpoint (memory-mapped, read without unpickling objects); None for no path or a name
    such as ``last``."""
    if not ckpt_path or ckpt_path in CKPT_NAMES:
        return None
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    try:
        return torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"--ckpt_path {ckpt_path} is truncated, corrupt or not a Lightning checkpoint ({err}). "
            "Nothing was loaded; pass another checkpoint (e.g. best-*.ckpt or last.ckpt beside it)."
        ) from err


def newest_version(folder: Path) -> int | None:
    """The largest N of the ``version_N`` folders in ``folder`` (None if there is none)."""
    versions = [int(p.name[len("version_"):]) for p in folder.glob("version_*") if p.name[len("version_"):].isdigit()]
    return max(versions) if versions else None


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's default callbacks, run folders, exact resumes, test-after-fit and publishing.

    Everything a run writes (logs, the resolved config, checkpoints, pictures) goes to
    ``<default_root_dir>/<run_name>/version_N/``: ``default_root_dir`` defaults to ``runs`` and
    ``run_name`` to the recipe's file name.
    """

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        self._argv = list(sys.argv[1:] if args is None else args)
        self._start_weights: Callable[[ZooModule], None] | None = None  # loads --weights into the built model
        super().__init__(
            model_class=ZooModule,
            subclass_mode_model=True,
            datamodule_class=LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults={"default_root_dir": RUNS_DIR},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--default_callbacks", type=bool, default=True,
                            help="Add early stopping, best/last checkpointing, LR monitor and a progress bar.")
        parser.add_argument("--patience", type=Optional[int], default=10,
                            help="Early-stopping patience in validation rounds (null disables early stopping).")
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, test the best checkpoint on the test split and print the metrics.")
        parser.add_argument("--publish", type=Optional[str], default=None,
                            help="After the test, save the best weights as NAME in --weights_dir with the measured metrics.")
        parser.add_argument("--weights_dir", type=str, default="weights", help="Folder of the manifest --publish writes to.")
        parser.add_argument("--weights", type=Optional[str], default=None,
                            help="Start a classifier from pretrained weights: torchvision's by name (IMAGENET1K_V1, "
                                 "AlexNet and VGG), a .safetensors/.pth state dict, or zoo weights (a shipped name "
                                 "or a save_pretrained folder). Unset num_classes, class_names, mean and std come "
                                 "from the weights. For a GAN with arch 'decoder': a fully connected VAE's zoo "
                                 "weights (e.g. cvae_mnist), whose decoder starts the generator.")
        parser.add_argument("--new_head", type=bool, default=False,
                            help="With --weights: start from a fresh head even if the weights' head fits.")
        parser.add_argument("--run_name", type=Optional[str], default=None,
                            help="Folder of the runs under default_root_dir (default: the recipe's file name).")
        parser.add_argument("--checkpoint_every_n_steps", type=Optional[int], default=None,
                            help="Also refresh last.ckpt every N training steps (default: at epoch ends only).")
        parser.add_argument("--channels_last", type=bool, default=False,
                            help="Store conv weights (and so activations) channels-last; pays off with bf16 on GPUs.")
        parser.add_argument("--compile", type=bool, default=False, help="Train a torch.compile'd model.")
        parser.add_argument("--ddp_timeout", type=float, default=1800.0,
                            help="Seconds a DDP process waits for the others before the job fails (strategy 'ddp').")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:  # a bad file is refused here, before Lightning reads hyperparameters from it
            check_checkpoint_file(self.config[subcommand].get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        config = self.config[self.subcommand]
        if config.get("run_name") is None:
            config.run_name = self._default_run_name(config)  # recorded in the run's config.yaml
        if config.get("weights"):
            self._start_weights = self._weights_settings(config)
        logger = config.trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        if init_args is None:
            return
        if init_args.get("save_dir") == ".":
            init_args["save_dir"] = self._root_dir()  # e.g. WandbLogger's default: not the working directory
        if str(logger.class_path).endswith("WandbLogger") and init_args.get("save_dir"):
            # Older wandb releases write part of their files under $WANDB_DIR (default: the cwd) whatever
            # save_dir says, and fall back to the system's temporary folder when save_dir does not exist yet.
            Path(init_args["save_dir"]).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("WANDB_DIR", str(init_args["save_dir"]))
        if self._resuming() and init_args.get("version") is None and init_args.get("save_dir") is not None:
            # a logger with run folders (CSV, TensorBoard): resume in the newest one
            init_args["version"] = newest_version(Path(init_args["save_dir"]) / (init_args.get("name") or "lightning_logs"))

    def _weights_settings(self, config) -> Callable[[ZooModule], None]:
        """Resolve ``--weights`` and fill the model settings it decides into the config (and so into
        config.yaml and the hyperparameters): the model is then built from plain values. Returns what
        loads the weights into the built model."""
        module_name, _, name = str(config.model.class_path).rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        init_args = config.model.init_args
        hparams = init_args.as_dict()
        if isinstance(cls, type) and issubclass(cls, GAN):
            try:
                settings, decoder, encoder = decoder_start(config.weights, hparams)
            except ValueError as err:
                raise UsageError(f"--weights {config.weights}: {err}") from err
            start = functools.partial(GAN.start_generator, decoder=decoder, source=f"the decoder of {config.weights!r}",
                                      encoder=encoder)
        elif isinstance(cls, type) and issubclass(cls, SupervisedModule):
            source = resolve_for(cls, config.weights, hparams)
            settings = settings_from(source, hparams, cls.head_key, config.new_head)
            start = lambda model: load_into(model.net, source, config.new_head)  # noqa: E731
        else:
            raise UsageError(f"--weights starts a classifier or regressor of the zoo, or a GAN from a VAE's decoder; "
                             f"{name} is neither")
        for key, value in settings.items():
            init_args[key] = value
        return start

    def _default_run_name(self, config) -> str:
        recipes = config.get("config") or []
        if recipes:
            return Path(str(recipes[-1])).stem
        return str(config.model.class_path).rsplit(".", 1)[-1].lower()

    def _root_dir(self) -> str:
        return str(self.config[self.subcommand].trainer.get("default_root_dir") or RUNS_DIR)

    def _resuming(self) -> bool:
        return self.subcommand == "fit" and self.config.fit.get("ckpt_path") == "last"

    def _option(self, key: str):
        return self.config_init[self.subcommand][key] if self.subcommand else self.config_init[key]

    def after_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        self.plain_model: ZooModule = self.model  # the model without a torch.compile wrapper
        if self._start_weights is not None:
            self._start_weights(self.model)
        if self._option("channels_last"):
            self.model = self.model.to(memory_format=torch.channels_last)
        if self._option("compile"):
            self.model = torch.compile(self.model)

    def instantiate_trainer(self, **kwargs):
        trainer_cfg = self._option("trainer")
        if self._option("default_callbacks"):
            self.trainer_defaults["callbacks"] = default_callbacks(  # before after_instantiate_classes compiles it
                monitor=self.model.monitor,
                mode=self.model.monitor_mode,
                patience=self._option("patience"),
                lr_monitor=trainer_cfg.get("logger") is not False,
                progress_bar=trainer_cfg.get("enable_progress_bar") is not False,
                last_every_n_steps=self._option("checkpoint_every_n_steps"),
            )
        if trainer_cfg.get("logger") in (None, True):  # the zoo's default logger: CSV, in the run folder
            root = Path(self._root_dir()) / self._option("run_name")
            kwargs.setdefault("logger", CSVLogger(save_dir=root.parent, name=root.name,
                                                  version=newest_version(root) if self._resuming() else None))
        if trainer_cfg.get("strategy") == "ddp":
            # A rank that dies leaves the others blocked in a collective; the timeout bounds that wait.
            kwargs.setdefault("strategy", DDPStrategy(timeout=timedelta(seconds=self._option("ddp_timeout"))))
        if not trainer_cfg.get("plugins"):
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        if self._resuming():
            self.config_init.fit.ckpt_path = str(self._last_checkpoint())
        self._fit_started = time.perf_counter()

    def _last_checkpoint(self) -> Path:
        """The run's ``last.ckpt`` for ``--ckpt_path last``; an error that says where it looked if there is none."""
        last = next((cb for cb in self.trainer.callbacks if isinstance(cb, LastCheckpoint)), None)
        folder = last.dirpath if last is not None and last.dirpath is not None else checkpoint_dir(self.trainer)
        path = folder / LastCheckpoint.FILE_NAME
        if path.is_file():
            return path
        runs = folder.parent.parent
        others = sorted(str(p) for p in runs.glob(f"version_*/checkpoints/{LastCheckpoint.FILE_NAME}"))
        hint = f" Other runs there have one: {', '.join(others)} (pass it as --ckpt_path)." if others else ""
        raise UsageError(
            f"--ckpt_path last: there is nothing to resume, {path} does not exist.{hint} Start a new run "
            "without --ckpt_path, or check --trainer.default_root_dir and --run_name (they say where runs are)."
        )

    def after_fit(self) -> None:
        self._fit_seconds = time.perf_counter() - self._fit_started
        if not (self._option("test_after_fit") or self._option("publish")):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None else ""
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)[0]
        if self.trainer.is_global_zero:
            source = f"best checkpoint {best}" if best else "final weights (no checkpoint was saved)"
            summary = ", ".join(f"{k} = {v:.4f}" for k, v in sorted(results.items()))
            print(f"\nTest results of the {source}: {summary}")
            if self._option("publish"):
                self._publish(results)

    def _training_record(self) -> dict[str, object]:
        """How long ``fit`` took and on what: the model card's training time."""
        trainer = self.trainer
        device = trainer.strategy.root_device
        if device.type == "cuda":
            hardware = torch.cuda.get_device_name(device)
        else:
            hardware = f"CPU, {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"
        if trainer.world_size > 1:
            hardware = f"{trainer.world_size} processes, each {hardware}"
        record = {"fit_seconds": round(self._fit_seconds), "hardware": hardware, "resumed": self._resuming(),
                  "epochs": trainer.current_epoch}
        if self._option("weights"):
            record["started_from"] = str(self._option("weights"))  # whose training time comes before this one's
        return record

    def _publish(self, results: dict[str, float]) -> None:
        from zoo.registry import name_of_datamodule
        from zoo.weights import publish

        name = self._option("publish")
        data_cfg = self.config[self.subcommand]["data"].as_dict()
        init_args = {k: v for k, v in (data_cfg.get("init_args") or {}).items() if k not in ("data_dir", "num_workers")}
        command = []
        skip = False
        for arg in self._argv:  # the reproduction command, without the publishing flags
            if skip:
                skip = False
                continue
            if arg in ZOO_ONLY_FLAGS:
                skip = True
                continue
            if arg.split("=")[0] in ZOO_ONLY_FLAGS:
                continue
            command.append(arg)
        record = publish(self.plain_model.cpu(), name, self._option("weights_dir"), {
            "dataset": name_of_datamodule(type(self.datamodule)),
            "datamodule": {"class_path": f"{type(self.datamodule).__module__}.{type(self.datamodule).__qualname__}",
                           "init_args": init_args},
            "metrics": {k: round(float(v), 6) for k, v in results.items() if k.startswith("test/") and k != "test/loss"},
            "recipe": "zoo " + " ".join(command),
            "seed": self.config[self.subcommand]["seed_everything"],
            "trained_with": {"torch": torch.__version__, "lightning": lightning.__version__},
            "training": self._training_record(),
        })
        print(f"Published {name}: {self._option('weights_dir')}/{record['file']} (sha256 {record['sha256'][:12]}...)")
