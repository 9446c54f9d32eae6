"""The `zoo` command as a user runs it: quickstart, list, evaluate, overrides, loggers, publish."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from zoo.cli import main
from zoo.weights import read_manifest, sha256_of

pytestmark = pytest.mark.compat  # the command line and its config parsing (LightningCLI, jsonargparse)

ZOO = [sys.executable, "-m", "zoo.cli"]


def run_zoo(*args, cwd, env=None, timeout=600):
    result = subprocess.run([*ZOO, *args], cwd=cwd, env={**os.environ, **(env or {})},
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_quickstart_reaches_95_percent(in_tmp):
    out = run_zoo("fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), cwd=in_tmp)
    line = next(l for l in out.splitlines() if l.startswith("Test results of the best checkpoint"))
    accuracy = float(line.split("test/acc = ")[1].split(",")[0])
    assert accuracy >= 0.95, line
    version = in_tmp / "runs" / "lenet5_digits" / "version_0"
    checkpoints = sorted(p.name for p in (version / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt" and checkpoints[0].startswith("best-")
    with open(version / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("lr-Adam") for r in rows), "the learning-rate monitor logged nothing"
    epochs = {r["epoch"] for r in rows if r.get("val/acc")}
    for key in ("train/loss_epoch", "train/acc", "val/loss"):  # once per epoch, every epoch
        assert {r["epoch"] for r in rows if r.get(key)} == epochs, key
    # 21 steps per epoch: the per-step loss is written at the loggers' cadence (log_every_n_steps: 10)
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert steps and all((s + 1) % 10 == 0 for s in steps), steps


def test_dotted_overrides_and_publish_round_trip(in_tmp):
    out = run_zoo("fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--trainer.max_epochs", "2",
                  "--publish", "tiny", "--weights_dir", "published", cwd=in_tmp)
    assert "Published tiny" in out
    entry = json.loads((in_tmp / "published" / "manifest.json").read_text())["tiny"]
    assert entry["recipe"] == f"zoo fit --config {REPO / 'recipes/lenet5_digits.yaml'} --trainer.max_epochs 2"
    assert entry["sha256"] == sha256_of(in_tmp / "published" / "tiny.safetensors")
    assert entry["dataset"] == "digits" and "data_dir" not in entry["datamodule"]["init_args"]
    reported = float(out.split("test/acc = ")[1].split(",")[0])
    assert entry["metrics"]["test/acc"] == pytest.approx(reported, abs=1e-4)
    assert entry["hparams"]["lr"] == 0.002
    assert entry["hparams"]["class_names"] == [str(d) for d in range(10)]  # from the DataModule


def test_list_shows_models_datamodules_and_weights(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "fashion_mnist" in out
    for name, entry in read_manifest().items():
        assert name in out and entry["recipe"] in out
        for key, value in entry["metrics"].items():
            assert f"{key} {value:.4f}" in out


LIGHT_COMMANDS = """
import contextlib, io, sys
from zoo.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["list"]) == 0 and main(["--help"]) == 0 and main(["recipes"]) == 0
    assert main(["recipes", "show", "lenet5_mnist"]) == 0
    try:
        main(["evaluate", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0, exit_.code
print("imported:", sorted(m for m in ("torch", "lightning", "torchvision", "torchmetrics") if m in sys.modules))
"""


def test_list_and_help_need_neither_torch_nor_lightning():
    # They answer at once: importing Lightning takes seconds (benchmarks/README.md, time to accuracy).
    result = subprocess.run([sys.executable, "-c", LIGHT_COMMANDS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout, result.stdout[-500:]


def test_console_script_exits_with_the_usual_statuses(in_tmp):
    # `zoo` skips the interpreter's teardown at exit (zoo.cli.console_main): statuses and output stay as usual.
    help_ = subprocess.run([*ZOO, "--help"], cwd=in_tmp, capture_output=True, text=True)
    assert help_.returncode == 0 and help_.stdout.startswith("usage: zoo") and "evaluate" in help_.stdout
    bare = subprocess.run(ZOO, cwd=in_tmp, capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: zoo")
    missing = subprocess.run([*ZOO, "fit", "--config", "no_such_recipe.yaml"], cwd=in_tmp, capture_output=True, text=True)
    assert missing.returncode == 2 and "no_such_recipe.yaml" in missing.stderr
    fit_help = subprocess.run([*ZOO, "fit", "--help"], cwd=in_tmp, capture_output=True, text=True)
    assert fit_help.returncode == 0 and "--trainer.max_epochs" in fit_help.stdout  # flushed in full


def test_console_script_stops_quietly_when_its_reader_goes_away(in_tmp):
    process = subprocess.Popen([*ZOO, "list"], cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `zoo list | head -1` does once it has its line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 141) and "Traceback" not in stderr, stderr


def test_evaluate_remeasures_shipped_weights(data_dir, in_tmp):
    out = run_zoo("evaluate", "lenet5_mnist", "--accelerator", "cpu", cwd=in_tmp, env={"ZOO_DATA_DIR": str(data_dir)})
    row = next(l for l in out.splitlines() if l.startswith("test/acc"))
    measured, recorded, verdict = row.split()[1:4]
    assert verdict == "ok" and abs(float(measured) - float(recorded)) < 1e-4


def test_progress_bar_can_be_turned_off_with_the_trainer_flag(in_tmp):
    out = run_zoo("fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--trainer.max_epochs", "1",
                  "--trainer.enable_progress_bar", "false", cwd=in_tmp)
    assert "Test results of the best checkpoint" in out and "Epoch 0" not in out


@pytest.mark.parametrize("option", [
    ["--channels_last", "true"],
    ["--trainer.precision", "bf16-mixed"],
    pytest.param(["--compile", "true"], marks=pytest.mark.slow),  # about 40 s of compilation on a CPU
], ids=lambda option: option[0].lstrip("-"))
def test_speed_options_train_and_test(option, in_tmp):
    out = run_zoo("fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--trainer.max_epochs", "2",
                  "--trainer.enable_progress_bar", "false", *option, cwd=in_tmp)
    line = next(l for l in out.splitlines() if l.startswith("Test results of the best checkpoint"))
    assert float(line.split("test/acc = ")[1].split(",")[0]) > 0.5, line  # chance is 0.1


def test_bad_config_value_is_refused_with_the_field_named(in_tmp):
    result = subprocess.run([*ZOO, "fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"),
                             "--model.init_args.lr", "-1"], cwd=in_tmp, capture_output=True, text=True)
    assert result.returncode != 0 and "lr must be > 0, got -1" in result.stderr


@pytest.mark.parametrize("flags, produced", [
    # a save_dir given is respected
    ([f"--trainer.logger={json.dumps({'class_path': 'lightning.pytorch.loggers.TensorBoardLogger', 'init_args': {'save_dir': 'tb'}})}"],
     "tb/lightning_logs/version_0/events.out.tfevents"),
    # named without one, a logger writes into the run folder
    (["--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger"], "runs/lenet5_digits/version_0/events.out.tfevents"),
    (["--trainer.logger", "CSVLogger"], "runs/lenet5_digits/version_0/metrics.csv"),
    # as the README writes it: save_dir left at WandbLogger's default "."
    (["--trainer.logger", "lightning.pytorch.loggers.WandbLogger", "--trainer.logger.offline", "true"],
     "runs/lenet5_digits/version_0/wandb/offline-run-"),
], ids=["tensorboard-save_dir", "tensorboard", "csv", "wandb"])
def test_other_loggers(flags, produced, in_tmp):
    run_zoo("fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--trainer.max_epochs", "1", *flags,
            cwd=in_tmp, env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    written = [str(p.relative_to(in_tmp)) for p in Path(in_tmp).rglob("*") if p.is_file()]
    assert any(path.startswith(produced) for path in written), written
    assert {path.split("/")[0] for path in written} == {produced.split("/")[0]}  # nothing else in the cwd


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "recipes").glob("*.yaml")))
def test_every_recipe_parses(recipe, in_tmp):
    out = run_zoo("fit", "--config", str(REPO / "recipes" / recipe), "--print_config", cwd=in_tmp)
    assert "class_path: zoo." in out
