"""The paths users take by default: the shipped recipes and no extra flags, run from another folder."""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.test_cli import ZOO, run_zoo

pytestmark = pytest.mark.compat  # every recipe through the CLI, and what runs write where

QUICKSTART = str(REPO / "recipes/lenet5_digits.yaml")  # 1,294 training digits, batch 64: 21 steps per epoch
# Messages for programmers that once reached every user's terminal.
PROGRAMMER_LINES = ("LightningCLI's args parameter", "💡 Tip", "LeafSpec", "`weights_only` was not set",
                    # Lightning's model summary: metric objects listed as layers, FLOPs never measured
                    "train_metrics", "Total FLOPs", "Modules in train mode",
                    "v_num", "GPU available: False", "Trainer already configured",
                    "to estimate number of stepping batches")


def _zoo(*args, cwd, env=None):
    return subprocess.run([*ZOO, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=600)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_sigkill_after_completed_epochs_then_resume_with_the_recipe_defaults(tmp_path):
    """No --checkpoint_every_n_steps, no --trainer.deterministic: last.ckpt of the finished epochs is enough."""
    run = ["fit", "--config", QUICKSTART, "--trainer.max_epochs", "4", "--test_after_fit", "false"]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir(), crashed.mkdir()
    run_zoo(*run, cwd=straight)

    killed = _zoo(*run, "--trainer.callbacks+=tests.killer.SigkillAtStep", "--trainer.callbacks.step", "50",
                  cwd=crashed, env={"PYTHONPATH": str(REPO)})  # epoch 2, batch 7
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = crashed / "runs/lenet5_digits/version_0/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 42  # the end of epoch 1, written by default

    run_zoo(*run, "--ckpt_path", "last", cwd=crashed)
    assert [p.name for p in (crashed / "runs/lenet5_digits").iterdir()] == ["version_0"]  # resumed in place
    ends = [torch.load(folder / "runs/lenet5_digits/version_0/checkpoints/last.ckpt", weights_only=True)
            for folder in (straight, crashed)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 84
    for key, value in ends[0]["state_dict"].items():
        assert torch.equal(value, ends[1]["state_dict"][key]), key
    for i, state in ends[0]["optimizer_states"][0]["state"].items():
        assert torch.equal(state["exp_avg_sq"], ends[1]["optimizer_states"][0]["state"][i]["exp_avg_sq"]), i


def test_last_checkpoint_is_written_at_every_epoch_end(tmp_path):
    """From Python, with default_callbacks() as they come: last.ckpt holds each finished epoch."""
    import lightning as L

    import zoo
    from tests.fakes import RandomImages
    from zoo.callbacks import default_callbacks

    model = zoo.create_model("lenet5")
    callbacks = default_callbacks(monitor=model.monitor, mode=model.monitor_mode, progress_bar=False,
                                  lr_monitor=False)
    last = callbacks[1]
    seen = []

    class ReadLast(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if last.last_model_path:
                seen.append(torch.load(last.last_model_path, weights_only=True)["epoch"])

    trainer = L.Trainer(accelerator="cpu", max_epochs=3, default_root_dir=tmp_path, logger=False,
                        callbacks=[*callbacks, ReadLast()], limit_train_batches=2, limit_val_batches=1,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=RandomImages())
    assert seen == [0, 1]  # when epochs 1 and 2 start, last.ckpt holds the epoch just finished
    assert Path(last.last_model_path) == tmp_path / "checkpoints/last.ckpt"


def test_ckpt_path_last_with_nothing_to_resume_is_an_error_naming_the_place(tmp_path):
    result = _zoo("fit", "--config", QUICKSTART, "--ckpt_path", "last", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    expected = tmp_path / "runs/lenet5_digits/version_0/checkpoints/last.ckpt"
    assert f"there is nothing to resume, {expected.relative_to(tmp_path)} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


def test_default_root_dir_holds_the_run_and_ckpt_path_last_finds_it_there(tmp_path):
    cwd, root = tmp_path / "cwd", tmp_path / "exp1"
    cwd.mkdir()
    out = run_zoo("fit", "--config", QUICKSTART, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root),
                  cwd=cwd)
    assert _files(cwd) == []  # nothing in the working directory
    files = _files(root)
    assert {"lenet5_digits/version_0/config.yaml", "lenet5_digits/version_0/metrics.csv",
            "lenet5_digits/version_0/checkpoints/last.ckpt"} <= set(files), files
    assert str(root / "lenet5_digits/version_0/checkpoints/best-") in out

    run_zoo("fit", "--config", QUICKSTART, "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root),
            "--ckpt_path", "last", "--test_after_fit", "false", cwd=cwd)
    assert _files(cwd) == []
    assert [p.name for p in (root / "lenet5_digits").iterdir()] == ["version_0"]
    assert torch.load(root / "lenet5_digits/version_0/checkpoints/last.ckpt", weights_only=True)["global_step"] == 42


def test_the_zoo_command_prints_no_messages_meant_for_programmers(tmp_path):
    result = _zoo("fit", "--config", "lenet5_digits", "--trainer.max_epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in PROGRAMMER_LINES:
        assert line not in result.stdout + result.stderr, line
    # the network's layers with their shapes and FLOPs instead
    conv = next(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("net.features.0 "))
    assert conv.split()[1:4] == ["Conv2d", "156", "235"] and conv.endswith("[1, 1, 28, 28]   [1, 6, 28, 28]")
    table = _zoo("fit", "--config", "mlp_wine", "--trainer.max_epochs", "2", cwd=tmp_path)  # a per-step schedule
    assert table.returncode == 0, table.stderr[-2000:]
    for line in PROGRAMMER_LINES:
        assert line not in table.stdout + table.stderr, line


RECIPES = sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))
# Needs torchvision's ImageNet VGG-16 file and a folder of images: tests/test_readme.py runs it with both.
NOT_RUN = {"transfer_vgg16_folder.yaml"}
# Where a run writes does not depend on how much work a step does. gan_mnist's 50-component noise
# mixture takes minutes to fit to 55,000 codes on one thread: 3 components run the same code (the
# mixture's fit and its numbers are tested in tests/test_gan.py). A GAN scores every validation and
# test round on thousands of generated images: 64 exercise the same metrics.
FASTER = {"gan_mnist.yaml": ["--model.init_args.noise_components", "3"]}
GAN_SAMPLES = ["--model.init_args.val_samples", "64", "--model.init_args.test_samples", "64"]


def test_no_recipe_chooses_where_runs_go():
    for recipe in RECIPES:
        text = (REPO / "recipes" / recipe).read_text()
        assert "save_dir" not in text and "default_root_dir" not in text, recipe


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in NOT_RUN])
def test_every_recipe_writes_only_under_default_root_dir(recipe, tmp_path, data_dir):
    cwd, root = tmp_path / "cwd", tmp_path / "exp"
    cwd.mkdir()
    text = (REPO / "recipes" / recipe).read_text()
    run_zoo("fit", "--config", str(REPO / "recipes" / recipe), "--trainer.default_root_dir", str(root),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
            "--trainer.limit_test_batches", "1", "--trainer.enable_progress_bar", "false",
            *FASTER.get(recipe, []), *(GAN_SAMPLES if "class_path: zoo.models.GAN" in text else []),
            cwd=cwd, env={"ZOO_DATA_DIR": str(data_dir)})
    assert _files(cwd) == []
    run = root / Path(recipe).stem / "version_0"
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert (run / "checkpoints/last.ckpt").is_file()
