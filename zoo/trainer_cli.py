"""The training subcommands of the ``zoo`` command: ``zoo fit|validate|test|predict``.

They are Lightning's own ``LightningCLI``; the recipe's monitored key drives the shared callbacks
(:func:`zoo.callbacks.default_callbacks`). :mod:`zoo.cli` imports this module only for these
subcommands, so that ``zoo list`` and ``zoo --help`` do not wait for Lightning to import.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Literal, Optional

import lightning
import torch
from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from zoo.callbacks import RunPage, default_callbacks
from zoo.checkpointing import AtomicCheckpointIO, LastCheckpoint, check_checkpoint_file, checkpoint_dir
from zoo.errors import UsageError, ZooError
from zoo.models.base import ZooModule
from zoo.names import did_you_mean
from zoo.recipes import RecipeNotFoundError, resolve_config
from zoo.registry import datamodule_classes, list_datamodules, list_models, model_classes, registered_class
from zoo.runs import metrics_rows

# Registered model and DataModule classes must be imported so that short names (--model LeNet5) resolve.
import zoo.data  # noqa: E402,F401
import zoo.models  # noqa: E402,F401

ZOO_ONLY_FLAGS = ("--publish", "--weights_dir")
RUNS_DIR = "runs"  # default_root_dir when the user gives none
# --logger WORD: the loggers a user chooses in one word
LOGGERS = {"csv": "lightning.pytorch.loggers.CSVLogger", "tensorboard": "lightning.pytorch.loggers.TensorBoardLogger",
           "wandb": "lightning.pytorch.loggers.WandbLogger"}
# The save_dir of a logger named without one (--trainer.logger CLASS): the run folder, filled in before it is built.
RUN_FOLDER = "<the run folder>"
SCHEDULES_WITH_A_LENGTH = ("cosine", "onecycle", "step")  # zoo.optim: they are fitted to the run's number of steps


def check_run_length(subcommand: str, config) -> None:
    """Refuse a run length that cannot work, before anything is built or trained.

    Args:
        subcommand: ``fit``, ``validate``, ``test`` or ``predict``.
        config: the subcommand's parsed configuration.

    Raises:
        UsageError: a negative length other than -1; an endless run with a learning-rate schedule
            fitted to the run's length; no training at all before ``test_after_fit`` or ``--publish``.
    """
    trainer = config.trainer
    lengths = {"max_epochs": trainer.get("max_epochs"), "max_steps": trainer.get("max_steps")}
    for key, value in lengths.items():
        if value is not None and value < -1:
            raise UsageError(f"--trainer.{key} {value}: give a number >= 1 (-1 trains without end)")
    if subcommand != "fit":
        return
    model = config.get("model")
    scheduler = (model.get("init_args") or {}).get("scheduler") if model else None
    endless = lengths["max_epochs"] == -1 and lengths["max_steps"] in (None, -1)
    if endless and scheduler in SCHEDULES_WITH_A_LENGTH:
        raise UsageError(f"--trainer.max_epochs -1 trains without end, but the model's {scheduler!r} learning-rate "
                         "schedule is fitted to the run's length: give --trainer.max_epochs N (or "
                         "--trainer.max_steps N), or --model.init_args.scheduler none")
    nothing = next((key for key, value in lengths.items() if value == 0), None)
    if nothing and (config.get("test_after_fit") or config.get("publish")):
        then, off = ("--publish", "drop --publish") if config.get("publish") else ("test_after_fit", "--test_after_fit false")
        raise UsageError(f"--trainer.{nothing} 0 trains nothing, and {then} would report the untrained weights "
                         f"as a result: give --trainer.{nothing} 1 or more (or {off})")


def check_logger_choice(config) -> None:
    """Refuse an unknown ``--logger`` word, and ``--logger`` together with ``--trainer.logger``."""
    choice = config.get("logger")
    if choice is None:
        return
    if choice not in LOGGERS:
        raise UsageError(f"--logger {choice}: unknown logger.{did_you_mean(choice, list(LOGGERS))} "
                         f"Valid choices: {', '.join(LOGGERS)}")
    if config.trainer.get("logger") is not None:
        raise UsageError(f"--logger {choice} and --trainer.logger both choose the logger: give one of them "
                         f"(--logger {choice} is --trainer.logger {LOGGERS[choice]})")


def _class_choice(flag: str, value: str) -> list[str]:
    """``--model NAME`` / ``--data NAME`` as the parser takes it: a registry name becomes its class path
    (and the fixed settings of the name); a class name or an import path stays as it is."""
    kind, names, classes = (("model", list_models(), model_classes()) if flag == "--model"
                            else ("data", list_datamodules(), datamodule_classes()))
    class_names = sorted({path.rsplit(".", 1)[-1] for path in classes})
    if "." in value or value in class_names or value.lstrip().startswith("{"):
        return [flag, value]
    if value not in names:
        raise UsageError(f"{flag} {value}: unknown {kind}.{did_you_mean(value, [*names, *class_names])} "
                         f"Valid names: {', '.join(names)} (`zoo list`), or a class name such as {class_names[0]}")
    cls, fixed = registered_class(kind, value)
    if not isinstance(cls, type):
        raise UsageError(f"{flag} {value} builds a model started from weights; on the command line name the "
                         "architecture and its weights: --model lenet5 --weights lenet5_mnist")
    fixed_flags = [item for key, v in fixed.items() for item in (f"{flag}.init_args.{key}", json.dumps(v))]
    return [flag, f"{cls.__module__}.{cls.__qualname__}", *fixed_flags]


def resolve_user_arguments(argv: list[str]) -> list[str]:
    """The training subcommand's arguments with the names a user may type resolved: ``--config NAME``
    to the shipped recipe's file, ``--model lenet5`` / ``--data mnist`` (the names ``zoo list`` prints)
    to their classes.

    Args:
        argv: the arguments after ``zoo``, e.g. ``["fit", "--config", "lenet5_mnist"]``.

    Raises:
        UsageError: an unknown recipe, model or DataModule name; the message lists the valid ones.
    """
    resolved, i = [], 0
    while i < len(argv):
        flag, equals, value = argv[i].partition("=")
        if flag == "--trainer.logger" and (equals or i + 1 < len(argv)):
            value = value if equals else argv[i + 1]
            resolved += [flag, value, *_run_folder_save_dir(value, argv[i + (1 if equals else 2):])]
            i += 1 if equals else 2
            continue
        if flag not in ("--config", "--model", "--data") or (not equals and i + 1 == len(argv)):
            resolved.append(argv[i])
            i += 1
            continue
        if not equals:
            value = argv[i + 1]
        i += 1 if equals else 2
        if flag == "--config":
            try:
                path = value if value.lstrip().startswith("{") else resolve_config(value)
            except RecipeNotFoundError as err:
                raise UsageError(str(err)) from None
            resolved += [flag, path, *_recipe_logger_save_dir(path, argv[i:])]
        else:
            resolved += _class_choice(flag, value)
    return resolved


def _run_folder_save_dir(logger: str, rest: list[str]) -> list[str]:
    """``--trainer.logger.save_dir RUN_FOLDER`` for a logger class named without the ``save_dir`` it
    requires (TensorBoard's, CSV's): its files then go to the zoo's run folder. Nothing for a logger
    given as a dict, ``true``/``false``, one whose ``save_dir`` follows in ``rest``, or one without it."""
    if any(arg.split("=")[0] in ("--trainer.logger.save_dir", "--trainer.logger.init_args.save_dir") for arg in rest):
        return []
    module_name, _, name = logger.strip().rpartition(".")
    try:  # a class name alone (TensorBoardLogger) is one of Lightning's loggers, as the parser reads it
        cls = getattr(importlib.import_module(module_name or "lightning.pytorch.loggers"), name)
        parameter = inspect.signature(cls).parameters.get("save_dir")
    except (ImportError, AttributeError, ValueError, TypeError):
        return []  # a dict, true/false, or a name the parser then says is wrong
    if parameter is None or parameter.default is not parameter.empty:
        return []  # e.g. WandbLogger's save_dir ".", which before_instantiate_classes reads as the run folder
    return ["--trainer.logger.save_dir", RUN_FOLDER]


def _recipe_logger_save_dir(recipe: str, rest: list[str]) -> list[str]:
    """``--trainer.logger.save_dir RUN_FOLDER`` for a recipe file whose ``trainer.logger`` names a
    logger class without the ``save_dir`` it requires, as :func:`_run_folder_save_dir` does for one
    named on the command line."""
    import yaml

    try:
        settings = yaml.safe_load(Path(recipe).read_text()) if Path(recipe).is_file() else None
    except (OSError, yaml.YAMLError):
        return []  # the parser says what is wrong with the file
    trainer = settings.get("trainer") if isinstance(settings, dict) else None
    logger = trainer.get("logger") if isinstance(trainer, dict) else None
    if not isinstance(logger, dict) or not isinstance(logger.get("class_path"), str):
        return []
    if "save_dir" in (logger.get("init_args") or {}):
        return []
    return _run_folder_save_dir(logger["class_path"], rest)


def _settings_of(class_path: str) -> list[str]:
    """The constructor arguments of a class and of the classes it passes ``**kwargs`` on to."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return []
    return sorted({p for klass in cls.__mro__ if "__init__" in vars(klass)
                   for p, param in inspect.signature(klass.__init__).parameters.items()
                   if p != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)})


TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "NoneType": "null"}


def short_parse_error(message: str, options: list[str]) -> str:
    """One line of jsonargparse's many: the setting that is wrong, why, and a near miss if there is one.

    Args:
        message: the parser's error message.
        options: the subcommand's top-level options, for a "did you mean" on an unknown one.
    """
    unknown = re.match(r"[Uu]nrecognized arguments: (\S+)", message)
    if unknown:
        flag = unknown.group(1).split("=")[0]
        return f"unknown option {flag}.{did_you_mean(flag, options)}"
    required = re.search(r"arguments are required: (.*)", message)
    if required:  # jsonargparse names them subcommand.key
        flags = ", ".join("--" + key.strip().split(".", 1)[-1] for key in required.group(1).split(","))
        return f"{flags} must be given: name a recipe (--config NAME, `zoo recipes` lists them) or --model and --data"
    key_match = re.match(r'Parser key "([^"]+)"', message)
    if not key_match:
        return message.splitlines()[0]
    key = key_match.group(1)
    given = re.search(r"^\s*Given value: (.*)$", message, re.M)
    lines = [line.strip().removeprefix("- ").strip() for line in message.splitlines()[1:]]
    not_accepted = re.search(r"Option '([^']+)' is not accepted", message)
    class_path = re.search(r"given class_path '([^']+)'", message)
    if not_accepted:
        option = not_accepted.group(1)
        owner = class_path.group(1).rsplit(".", 1)[-1] if class_path else key
        choices = _settings_of(class_path.group(1)) if class_path else []
        return f"--{key}.init_args.{option}: {owner} has no setting {option!r}.{did_you_mean(option, choices)}"
    literal = re.search(r"Expected an? typing\.Literal\[(.*)\]", message)
    if literal:  # a fixed set of words: the valid ones, and the nearest to what was typed
        choices = re.findall(r"'([^']*)'", literal.group(1))
        got = given or re.search(r"Got value: (.*)$", message, re.M)
        value = got.group(1).strip() if got else ""
        return f"--{key} {value}: choose one of {', '.join(choices)}.{did_you_mean(value, choices)}".replace(" :", ":")
    types = re.findall(r"Expected an? <class '(\w+)'>", message)
    reasons = [line for line in lines if line and not line.startswith(
        ("Expected a <class", "Does not validate", "Subtypes:", "Errors:", "Given value", "Problem with given"))]
    if types and (not reasons or all(r.startswith("Expected a") for r in reasons)):
        expected = " or ".join(TYPE_NAMES.get(t, t) for t in types)
        return f"--{key} {given.group(1) if given else ''}: expected {expected}".replace(" :", ":")
    reason = reasons[0] if reasons else lines[0]
    field = re.match(r"(\w+) ", reason)
    if field and given and f"{field.group(1)}=" in given.group(1):  # a constructor's check that names its field
        return f"--{key}.init_args.{field.group(1)}: {reason}"
    return f"--{key}: {reason}"


def newest_version(folder: Path) -> int | None:
    """The largest N of the ``version_N`` folders in ``folder`` (None if there is none)."""
    versions = [int(p.name[len("version_"):]) for p in folder.glob("version_*") if p.name[len("version_"):].isdigit()]
    return max(versions) if versions else None


def prepare_wandb_folder(folder: Path, resuming: bool, settings) -> None:
    """Fill ``settings`` (a WandbLogger's arguments) so that its run lives in ``folder``; a resumed run
    takes the id of the W&B run already there, and so its checkpoint folder."""
    folder.mkdir(parents=True, exist_ok=True)
    settings["save_dir"] = str(folder)
    # Older wandb releases write part of their files under $WANDB_DIR (default: the cwd) whatever
    # save_dir says, and fall back to the system's temporary folder when save_dir does not exist yet.
    os.environ.setdefault("WANDB_DIR", str(folder))
    # offline-run-<time>-<id> or run-<time>-<id>, newest last
    runs = sorted((folder / "wandb").glob("*run-*-*"), key=lambda run: run.name.removeprefix("offline-"))
    if resuming and runs and settings.get("version") is None and settings.get("id") is None:
        settings["version"] = runs[-1].name.rsplit("-", 1)[-1]


def with_metrics_csv(logger):
    """``logger`` (one or a list) and a CSVLogger writing ``metrics.csv`` into the same run folder, unless
    one of them is a CSVLogger already: the run page, ``zoo report`` and ``zoo compare`` read that file
    whichever logger a run chose."""
    loggers = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    if not loggers or any(isinstance(each, CSVLogger) for each in loggers):
        return logger
    first = loggers[0]  # the Trainer's log_dir, as Lightning reads it
    folder = first.log_dir if isinstance(first, TensorBoardLogger) else first.save_dir
    if folder is None:
        return logger
    folder = Path(folder)
    return [*loggers, CSVLogger(save_dir=folder.parent, name="", version=folder.name)]


class KeepMetricsOnResume(Callback):
    """A resumed run's ``metrics.csv`` keeps the rows of the steps before its checkpoint.

    Lightning's CSVLogger starts the file afresh when it opens a folder that has one; this callback reads
    the rows before that and logs those of the steps the checkpoint holds again, so that the file (and
    the run page drawn from it) covers the whole run. Rows past the checkpoint, of steps the resumed run
    trains again, are left out.
    """

    def __init__(self, rows: list[dict[str, float]]) -> None:
        self.rows = rows

    def on_train_start(self, trainer, pl_module) -> None:
        csv_logger = next((each for each in trainer.loggers if isinstance(each, CSVLogger)), None)
        if csv_logger is None or not trainer.is_global_zero:
            return
        for row in self.rows:
            step = row.pop("step", None)
            if step is not None and step < trainer.global_step:
                csv_logger.log_metrics(row, step=step)
        self.rows = []


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's default callbacks, run folders, exact resumes, test-after-fit and publishing.

    Everything a run writes (logs, the resolved config, checkpoints, pictures) goes to
    ``<default_root_dir>/<run_name>/version_N/``: ``default_root_dir`` defaults to ``runs`` and
    ``run_name`` to the recipe's file name.
    """

    def __init__(self, args: list[str] | None = None, command_line: list[str] | None = None, **kwargs) -> None:
        """
        Args:
            args: the arguments after ``zoo`` (default: the process's own).
            command_line: the arguments as the user typed them, recorded in published weights as the
                command that reproduces them (default: ``args``).
            **kwargs: more arguments of ``LightningCLI``.
        """
        self._argv = list(command_line or (sys.argv[1:] if args is None else args))
        # Parse errors come back as exceptions, which zoo.cli prints as one short line (no usage dump).
        parser_kwargs = {"exit_on_error": False, **kwargs.pop("parser_kwargs", {})}
        self._start_weights: Callable[[ZooModule], None] | None = None  # loads --weights into the built model
        self._subcommand_parser = None
        self._best_checkpoint: ModelCheckpoint | None = None  # the zoo's own (run_callbacks), for the test after fit
        super().__init__(
            model_class=ZooModule,
            subclass_mode_model=True,
            datamodule_class=LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults={"default_root_dir": RUNS_DIR},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={**parser_kwargs, **{command: {"exit_on_error": False, **parser_kwargs.get(command, {})}
                                               for command in self.subcommands()}},
            args=args,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        self._subcommand_parser = parser  # the options are the same in every subcommand but ckpt_path
        parser.add_argument("--default_callbacks", type=bool, default=True,
                            help="Add early stopping, best/last checkpointing, LR monitor and a progress bar.")
        parser.add_argument("--patience", type=Optional[int], default=10,
                            help="Early-stopping patience in validation rounds (null disables early stopping).")
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit, test the weights --test_checkpoint names on the test split and print the metrics.")
        parser.add_argument("--test_checkpoint", type=Literal["best", "last"], default="best",
                            help="The weights test_after_fit tests and --publish saves: best (the best checkpoint by "
                                 "the validation metric) or last (the weights training ended with).")
        parser.add_argument("--publish", type=Optional[str], default=None,
                            help="After the test, save the tested weights as NAME in --weights_dir with the measured metrics.")
        parser.add_argument("--weights_dir", type=str, default="weights", help="Folder of the manifest --publish writes to.")
        parser.add_argument("--weights", type=Optional[str], default=None,
                            help="Start a classifier from pretrained weights: torchvision's by name (IMAGENET1K_V1, "
                                 "AlexNet and VGG), a .safetensors/.pth state dict, or zoo weights (a shipped name "
                                 "or a save_pretrained folder). Unset num_classes, class_names, mean and std come "
                                 "from the weights. For a GAN with arch 'decoder': a fully connected VAE's zoo "
                                 "weights (e.g. cvae_mnist), whose decoder starts the generator.")
        parser.add_argument("--new_head", type=bool, default=False,
                            help="With --weights: start from a fresh head even if the weights' head fits.")
        parser.add_argument("--logger", type=Optional[str], default=None,
                            help="The logger, in one word: csv (the default), tensorboard or wandb (offline unless "
                                 "WANDB_MODE says otherwise); its files go to the run folder.")
        parser.add_argument("--run_name", type=Optional[str], default=None,
                            help="Folder of the runs under default_root_dir (default: the recipe's file name).")
        parser.add_argument("--checkpoint_every_n_steps", type=Optional[int], default=None,
                            help="Also refresh last.ckpt every N training steps (default: at epoch ends only).")
        parser.add_argument("--channels_last", type=bool, default=False,
                            help="Store conv weights (and so activations) channels-last; pays off with bf16 on GPUs.")
        parser.add_argument("--compile", type=bool, default=False, help="Train a torch.compile'd model.")
        parser.add_argument("--cache_features", type=bool, default=True,
                            help="With finetune feature_extractor or top<k> and no augmentation: compute the frozen "
                                 "layers' output once per training image and train the rest from it.")
        parser.add_argument("--ddp_timeout", type=float, default=1800.0,
                            help="Seconds a DDP process waits for the others before the job fails (strategy 'ddp').")

    def parse_arguments(self, parser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            raise UsageError(short_parse_error(str(err), self._top_level_options())) from None
        subcommand = self.config.get("subcommand")
        if subcommand:  # a bad file is refused here, before Lightning reads hyperparameters from it
            check_logger_choice(self.config[subcommand])
            check_run_length(subcommand, self.config[subcommand])
            check_checkpoint_file(self.config[subcommand].get("ckpt_path"))

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:  # a constructor's check of a setting, wrapped by jsonargparse
            raise UsageError(self._bad_setting(err)) from None

    def _bad_setting(self, err: ValueError) -> str:
        """One line for a model's or DataModule's refusal of a setting: the flag that sets it, and why."""
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        reason = str(root).splitlines()[0]
        config = self.config[self.subcommand] if self.subcommand else self.config
        for section in ("model", "data"):
            class_path = str(config[section].get("class_path") or "")
            if class_path and f"class_path='{class_path}'" in str(err):
                field = re.match(r"(\w+) ", reason)
                if field and field.group(1) in (config[section].get("init_args") or {}):
                    return f"--{section}.init_args.{field.group(1)}: {reason}"
                return f"--{section} {class_path.rsplit('.', 1)[-1]}: {reason}"
        return reason

    def _top_level_options(self) -> list[str]:
        """The options of a training subcommand, for a "did you mean" on a mistyped one."""
        defaults = self._subcommand_parser.get_defaults() if self._subcommand_parser is not None else {}
        return ["--config", "--print_config", *(f"--{key}" for key in defaults.keys())]

    def before_instantiate_classes(self) -> None:
        if not self.subcommand:
            return
        config = self.config[self.subcommand]
        if config.get("run_name") is None:
            config.run_name = self._default_run_name(config)  # recorded in the run's config.yaml
        self._fill_settings_from_data(config)
        if config.get("weights"):
            self._start_weights = self._weights_settings(config)
        logger = config.trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        if init_args is None:
            return
        wandb = str(logger.class_path).endswith("WandbLogger")
        if init_args.get("save_dir") in (RUN_FOLDER, "."):  # named without a save_dir (WandbLogger's default is ".")
            if wandb:  # no version folders of its own: it goes into the run's
                init_args["save_dir"] = str(self._run_folder())
            else:
                init_args["save_dir"], init_args["name"] = self._root_dir(), config.run_name
        if wandb and init_args.get("save_dir"):
            prepare_wandb_folder(Path(init_args["save_dir"]), self._resuming(), init_args)
        elif self._resuming() and init_args.get("version") is None and init_args.get("save_dir") is not None:
            # a logger with run folders (CSV, TensorBoard): resume in the newest one
            init_args["version"] = newest_version(Path(init_args["save_dir"]) / (init_args.get("name") or "lightning_logs"))

    def _fill_settings_from_data(self, config) -> None:
        """Fill in the model settings a DataModule decides (a table's number of features, task and
        classes: ``model_settings``), for those the model takes, so that a recipe runs on any table."""
        from zoo.data.base import TensorDataModule

        data, model = config.get("data"), config.get("model")
        if data is None or model is None or not data.get("class_path") or not model.get("class_path"):
            return
        module_name, _, name = str(data.class_path).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError):
            return  # the parser says what is wrong with it
        if not (isinstance(cls, type) and issubclass(cls, TensorDataModule) and cls.decides_model_settings):
            return
        init_args = data.get("init_args")
        try:
            settings = cls(**(init_args.as_dict() if init_args is not None else {})).model_settings()
        except (ValueError, TypeError) as err:
            if isinstance(err, ZooError):  # the table's own error: it names the file, column and row
                raise
            raise UsageError(f"--data {name}: {err}") from None
        accepted = _settings_of(str(model.class_path))
        if "input_shape" in settings and "input_shape" not in accepted:
            model_name = str(model.class_path).rsplit(".", 1)[-1]
            raise UsageError(f"--model {model_name} has a fixed input shape, but {name}'s rows are "
                             f"{settings['input_shape'][0]} features each: train a model that takes features (--model mlp)")
        if model.get("init_args") is None:
            model.init_args = type(config)()
        for key, value in settings.items():
            if key in accepted:
                model.init_args[key] = value

    def _weights_settings(self, config) -> Callable[[ZooModule], None]:
        """Resolve ``--weights`` and fill the model settings it decides into the config (and so into
        config.yaml and the hyperparameters): the model is then built from plain values. Returns what
        loads the weights into the built model."""
        module_name, _, name = str(config.model.class_path).rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        init_args = config.model.init_args
        try:
            settings, start = cls.weights_start(config.weights, init_args.as_dict(), config.new_head)
        except ValueError as err:  # settings that do not fit the weights, or a model that starts from none
            raise UsageError(f"--weights {config.weights}: {err}") from err
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

    def _run_folder(self) -> Path:
        """``<default_root_dir>/<run_name>/version_N``: a new N, or the newest with ``--ckpt_path last``."""
        runs = Path(self._root_dir()) / self.config[self.subcommand].run_name
        newest = newest_version(runs)
        if self._resuming():
            return runs / f"version_{newest or 0}"
        return runs / f"version_{0 if newest is None else newest + 1}"

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

    def run_callbacks(self, trainer_cfg) -> list:
        """The zoo's callbacks of a run (``--default_callbacks``): early stopping, checkpoints, the NaN guard..."""
        callbacks = default_callbacks(
            monitor=self.model.monitor,
            mode=self.model.monitor_mode,
            patience=self._option("patience"),
            lr_monitor=trainer_cfg.get("logger") is not False,
            run_page=trainer_cfg.get("logger") is not False,
            progress_bar=trainer_cfg.get("enable_progress_bar") is not False,
            summary=trainer_cfg.get("enable_model_summary") is not False,
            last_every_n_steps=self._option("checkpoint_every_n_steps"),
            cache_features=self._option("cache_features"),
        )
        # The zoo's best checkpoint, for the test after fit: a ModelCheckpoint of the user's
        # (--trainer.callbacks+=ModelCheckpoint) comes first in the trainer's list, as trainer.checkpoint_callback.
        self._best_checkpoint = next(cb for cb in callbacks if isinstance(cb, ModelCheckpoint))
        return callbacks

    def instantiate_trainer(self, **kwargs):
        trainer_cfg = self._option("trainer")
        if self._option("default_callbacks"):  # before after_instantiate_classes compiles the model
            self.trainer_defaults["callbacks"] = self.run_callbacks(trainer_cfg)
        logger = trainer_cfg.get("logger")
        if logger in (None, True) and "logger" not in kwargs:  # the zoo's loggers, in the run folder: CSV by default
            kwargs["logger"] = with_metrics_csv(self._chosen_logger(self._option("logger") or "csv"))
        elif logger is not False and "logger" not in kwargs:  # a logger of the user's choice, and metrics.csv
            kwargs["logger"] = with_metrics_csv(logger)
        if trainer_cfg.get("strategy") == "ddp":
            # A rank that dies leaves the others blocked in a collective; the timeout bounds that wait.
            kwargs.setdefault("strategy", DDPStrategy(timeout=timedelta(seconds=self._option("ddp_timeout"))))
        if not trainer_cfg.get("plugins"):
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        return super().instantiate_trainer(**kwargs)

    def _chosen_logger(self, choice: str):
        """The logger ``--logger choice`` names, writing into the run folder."""
        root = Path(self._root_dir()) / self._option("run_name")
        version = newest_version(root) if self._resuming() else None
        if choice == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            return TensorBoardLogger(save_dir=root.parent, name=root.name, version=version)
        if choice == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            settings = {}
            prepare_wandb_folder(self._run_folder(), self._resuming(), settings)
            # offline needs no account; WANDB_MODE (wandb's own setting) says otherwise
            return WandbLogger(**settings, offline="WANDB_MODE" not in os.environ)
        return CSVLogger(save_dir=root.parent, name=root.name, version=version)

    def before_fit(self) -> None:
        for page in (cb for cb in self.trainer.callbacks if isinstance(cb, RunPage)):
            page.test_follows = bool(self._option("test_after_fit") or self._option("publish"))
        if self._resuming():
            self.config_init.fit.ckpt_path = str(self._last_checkpoint())
            csv_logger = next((each for each in self.trainer.loggers if isinstance(each, CSVLogger)), None)
            if csv_logger is not None:  # read before the logger opens its folder and starts the file afresh
                rows = metrics_rows(Path(csv_logger.log_dir) / "metrics.csv")
                self.trainer.callbacks.append(KeepMetricsOnResume(rows))
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
        if self._option("test_after_fit") or self._option("publish"):
            self._test_after_fit()
        page = next((cb.page for cb in self.trainer.callbacks if isinstance(cb, RunPage)), None)
        if self.trainer.is_global_zero and page is not None and page.is_file():
            print(f"\nRun page: {page} (open it in a browser)")

    def _test_after_fit(self) -> None:
        checkpoint = self._best_checkpoint or self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if self._option("test_checkpoint") == "last":
            best = ""  # the weights in memory are the ones training ended with
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)[0]
        if self.trainer.is_global_zero:
            source = (f"best checkpoint {best}" if best else "final weights" if self._option("test_checkpoint") == "last"
                      else "final weights (no checkpoint was saved)")
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
                  "epochs": trainer.current_epoch, "kept": self._option("test_checkpoint")}
        if self._option("weights"):
            record["started_from"] = str(self._option("weights"))  # whose training time comes before this one's
        return record

    def _publish(self, results: dict[str, float]) -> None:
        from zoo.registry import name_of_datamodule
        from zoo.weights import publish

        name = self._option("publish")
        data_cfg = self.config[self.subcommand]["data"].as_dict()
        # frame: a DataFrame given in Python (TabularDataModule), which no manifest can hold
        init_args = {k: v for k, v in (data_cfg.get("init_args") or {}).items()
                     if k not in ("data_dir", "num_workers") and not (k == "frame" and v is None)}
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
