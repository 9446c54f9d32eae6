"""Crash and resume: a run killed mid-epoch and resumed with --ckpt_path last ends where an
uninterrupted run ends, bit for bit; interrupted checkpoint writes never corrupt the last one."""

import os
import subprocess

import pytest
import torch

import zoo
from tests.conftest import REPO
from tests.test_cli import ZOO, run_zoo
from zoo.checkpointing import AtomicCheckpointIO
from zoo.runs import metrics_rows

pytestmark = pytest.mark.compat  # checkpoints and exact resumes

# 1,294 digits / batch 64 = 21 steps per epoch; 2 epochs = 42 steps, a multiple of the checkpoint interval.
RUN = ["fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--trainer.max_epochs", "2",
       "--trainer.deterministic", "true", "--checkpoint_every_n_steps", "3", "--test_after_fit", "false",
       "--model.init_args.dropout", "0.2"]  # dropout and shift augmentation both draw random numbers


def _final_state(folder):
    checkpoint = torch.load(folder / "runs/lenet5_digits/version_0/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 42
    return checkpoint


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    env = {"PYTHONPATH": str(REPO)}
    (tmp_path / "straight").mkdir()
    run_zoo(*RUN, cwd=tmp_path / "straight", env=env)

    (tmp_path / "crashed").mkdir()
    killed = subprocess.run([*ZOO, *RUN, "--trainer.callbacks+=tests.killer.SigkillAtStep",
                             "--trainer.callbacks.step", "28"],  # epoch 1, batch 6; last.ckpt is from step 27
                            cwd=tmp_path / "crashed", env={**os.environ, **env}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_zoo(*RUN, "--ckpt_path", "last", cwd=tmp_path / "crashed", env=env)

    straight, resumed = _final_state(tmp_path / "straight"), _final_state(tmp_path / "crashed")
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    adam_straight = straight["optimizer_states"][0]["state"]
    adam_resumed = resumed["optimizer_states"][0]["state"]
    assert all(torch.equal(adam_straight[i]["exp_avg"], adam_resumed[i]["exp_avg"]) for i in adam_straight)
    versions = list((tmp_path / "crashed/runs/lenet5_digits").iterdir())
    assert [v.name for v in versions] == ["version_0"]  # resumed in the crashed run's own folder
    # metrics.csv keeps what the run logged before the crash: its validation rows are the straight run's
    validation = [[row for row in metrics_rows(folder / "runs/lenet5_digits/version_0/metrics.csv") if "val/loss" in row]
                  for folder in (tmp_path / "straight", tmp_path / "crashed")]
    assert validation[0] and validation[1] == validation[0]


def test_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies half-way through writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_non_finite_loss_stops_training_naming_step_and_checkpoint(in_tmp):
    result = subprocess.run(
        [*ZOO, "fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--model.init_args.optimizer", "sgd",
         "--model.init_args.lr", "1e12", "--model.init_args.scheduler", "none", "--checkpoint_every_n_steps", "1"],
        cwd=in_tmp, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    message = next(line for line in result.stderr.splitlines() if line.startswith("zoo fit: error: NonFiniteLossError: "))
    assert "Traceback" not in result.stderr
    assert "at global step" in message and "training stopped" in message
    last = message.split("Last good checkpoint: ")[1].split(". ")[0]
    checkpoint = torch.load(last, weights_only=True)  # the last good state is intact and loadable
    step = int(message.split("at global step ")[1].split(" ")[0])
    assert checkpoint["global_step"] == step - 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_bad_checkpoint_files_get_a_clear_error(damage, in_tmp):
    path = in_tmp / "model.ckpt"
    if damage != "missing":
        torch.save({"state_dict": {"w": torch.ones(1000)}, "hyper_parameters": {"lr": 0.1}}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint" * 10)
    result = subprocess.run([*ZOO, "fit", "--config", str(REPO / "recipes/lenet5_digits.yaml"), "--ckpt_path", str(path)],
                            cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    expected = "no such checkpoint file" if damage == "missing" else "is truncated, corrupt or not a Lightning checkpoint"
    assert expected in result.stderr


# The settings of the runs killed and resumed below: 2 epochs, a checkpoint every 3 steps, deterministic,
# a CSV logger in runs/NAME.
RUN_SETTINGS = """
seed_everything: 0
test_after_fit: false
checkpoint_every_n_steps: 3
trainer:
  max_epochs: 2
  deterministic: true
  num_sanity_val_steps: 0
  enable_progress_bar: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {save_dir: runs, name: NAME}
"""


def run_settings(name: str) -> str:
    return RUN_SETTINGS.replace("NAME", name)


GAN_RECIPE = run_settings("gan") + """model:
  class_path: zoo.models.GAN
  init_args: {arch: dcgan, latent_dim: 8, channels: 4, val_samples: 32, test_samples: 32, %s}
data:
  class_path: zoo.data.DigitsDataModule
  init_args: {batch_size: 64, seed: 1}
"""


def _kill_and_resume(recipe_text: str, name: str, tmp_path):
    """The final last.ckpt of an uninterrupted run of ``recipe_text``, and of one SIGKILLed in its
    second epoch, between two step checkpoints, then resumed with --ckpt_path last."""
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(recipe_text)
    env = {"PYTHONPATH": str(REPO)}
    run = ["fit", "--config", str(recipe)]
    (tmp_path / "straight").mkdir()
    run_zoo(*run, cwd=tmp_path / "straight", env=env)
    straight = torch.load(tmp_path / f"straight/runs/{name}/version_0/checkpoints/last.ckpt", weights_only=True)
    steps = straight["global_step"]  # Lightning counts every optimizer step (a GAN's D and G per batch)
    kill_at = steps * 2 // 3 + 1  # in the second epoch, between two step checkpoints

    (tmp_path / "crashed").mkdir()
    killed = subprocess.run([*ZOO, *run, "--trainer.callbacks+=tests.killer.SigkillAtStep",
                             "--trainer.callbacks.step", str(kill_at)],
                            cwd=tmp_path / "crashed", env={**os.environ, **env}, capture_output=True, text=True)
    assert killed.returncode == -9, f"not killed at step {kill_at} of {steps}: " + killed.stderr[-2000:]
    run_zoo(*run, "--ckpt_path", "last", cwd=tmp_path / "crashed", env=env)
    resumed = torch.load(tmp_path / f"crashed/runs/{name}/version_0/checkpoints/last.ckpt", weights_only=True)
    assert resumed["global_step"] == steps
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    return straight, resumed


@pytest.mark.slow
@pytest.mark.parametrize("options, networks", [
    ("label_smoothing: 0.1", {"generator", "discriminator"}),
    # the shipped recipes' options: class labels, hinge loss, spectral norm, a moving average of G
    ("num_classes: 10, loss: hinge, spectral_norm: true, ema_decay: 0.9", {"generator", "discriminator", "generator_ema"}),
], ids=["bce", "conditional-hinge-sn-ema"])
def test_gan_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(options, networks, tmp_path):
    """Two optimizers under manual optimization: both networks and both Adam states must match."""
    straight, resumed = _kill_and_resume(GAN_RECIPE % options, "gan", tmp_path)
    assert {k.split(".")[0] for k in straight["state_dict"]} == networks
    assert len(straight["optimizer_states"]) == 2
    for adam_straight, adam_resumed in zip(straight["optimizer_states"], resumed["optimizer_states"]):
        for i, state in adam_straight["state"].items():
            assert torch.equal(state["exp_avg"], adam_resumed["state"][i]["exp_avg"]), i


DECODER_GAN_RECIPE = GAN_RECIPE.replace("checkpoint_every_n_steps: 3", "checkpoint_every_n_steps: 3\nweights: %s").replace(
    "init_args: {arch: dcgan, latent_dim: 8, channels: 4, val_samples: 32, test_samples: 32, %s}",
    "init_args: {arch: decoder, latent_dim: 4, generator_hidden: [32, 16], discriminator_hidden: [32], num_classes: 10, "
    "spectral_norm: true, classifier_weight: 1.0, ema_decay: 0.9, noise_components: 3, val_samples: 32, "
    "test_samples: 32}")


@pytest.mark.slow
def test_gan_started_from_a_vae_decoder_resumes_exactly_after_sigkill(tmp_path):
    """cgan_mnist's and gan_mnist's options: --weights puts a VAE's decoder in the generator, and a noise
    mixture is fitted to the VAE's codes when training starts, neither of which a resume may redo over the
    checkpoint; an auxiliary classifier; labels, spectral norm and a moving average."""
    torch.manual_seed(0)
    vae = zoo.create_model("vae", latent_size=4, hidden_sizes=[16, 32], num_classes=10)
    vae.save_pretrained(tmp_path / "cvae")
    straight, resumed = _kill_and_resume(DECODER_GAN_RECIPE % (tmp_path / "cvae"), "gan", tmp_path)
    assert {k.split(".")[0] for k in straight["state_dict"]} == {"generator", "discriminator", "generator_ema",
                                                                  "noise_weights", "noise_means", "noise_scale_tril",
                                                                  "noise_fitted"}
    assert any(k.startswith("discriminator.classifier.") for k in straight["state_dict"])
    assert bool(straight["state_dict"]["noise_fitted"]) and straight["state_dict"]["noise_means"].abs().sum() > 0
    start = vae.state_dict()["net.decoder.head.weight"]
    assert not torch.equal(straight["state_dict"]["generator.net.head.weight"], start)  # trained from the decoder
    for adam_straight, adam_resumed in zip(straight["optimizer_states"], resumed["optimizer_states"]):
        for i, state in adam_straight["state"].items():
            assert torch.equal(state["exp_avg"], adam_resumed["state"][i]["exp_avg"]), i


CVAE_RECIPE = GAN_RECIPE.replace("name: gan", "name: cvae").replace(
    "zoo.models.GAN\n  init_args: {arch: dcgan, latent_dim: 8, channels: 4, val_samples: 32, test_samples: 32, %s}",
    "zoo.models.VAE\n  init_args: {latent_size: 4, hidden_sizes: [32], num_classes: 10, iwae_samples: 3, "
    "scheduler: cosine, nll_samples: 0}")


@pytest.mark.slow
def test_conditional_vae_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """cvae_mnist's options: labels, dynamic binarisation and k-sample noise all drawn, a cosine schedule."""
    assert "zoo.models.VAE" in CVAE_RECIPE
    straight, resumed = _kill_and_resume(CVAE_RECIPE, "cvae", tmp_path)
    adam_straight, adam_resumed = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert adam_straight and all(torch.equal(adam_straight[i]["exp_avg"], adam_resumed[i]["exp_avg"]) for i in adam_straight)
    assert straight["lr_schedulers"] == resumed["lr_schedulers"]


TABLE_RECIPE = run_settings("table") + """model:
  class_path: zoo.models.MLP
  init_args: {hidden_sizes: [16], dropout: 0.2, scheduler: cosine}
data:
  class_path: zoo.data.TabularDataModule
  init_args: {table: wine, batch_size: 8, seed: 1}
"""


@pytest.mark.slow
def test_table_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """A table's rows (the wine table, its input size and classes filled in from the data) resume exactly:
    the training order, dropout and the learning-rate schedule."""
    straight, resumed = _kill_and_resume(TABLE_RECIPE, "table", tmp_path)
    assert straight["hyper_parameters"]["input_shape"] == [13]
    assert straight["hyper_parameters"]["input_table"] == resumed["hyper_parameters"]["input_table"]
    adam_straight, adam_resumed = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert adam_straight and all(torch.equal(adam_straight[i]["exp_avg"], adam_resumed[i]["exp_avg"]) for i in adam_straight)
    assert straight["lr_schedulers"] == resumed["lr_schedulers"]

