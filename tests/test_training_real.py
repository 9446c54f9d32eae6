"""Short training runs on the real MNIST that must clear an accuracy bar."""

import os
import subprocess
import sys

import lightning as L
import pytest
import torch

import zoo
from tests.conftest import REPO


@pytest.mark.slow
def test_lenet5_one_epoch_on_real_mnist(data_dir, tmp_path):
    L.seed_everything(0)
    dm = zoo.create_datamodule("mnist", data_dir=data_dir, batch_size=128)
    model = zoo.create_model("lenet5", mean=list(dm.mean), std=list(dm.std), lr=2e-3)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    accuracy = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
    assert accuracy >= 0.97


def test_wide_one_hidden_layer_mlp_approximates_a_function(tmp_path):
    L.seed_everything(0)
    dm = zoo.create_datamodule("function", function="wave", batch_size=128)
    model = zoo.create_model("mlp", task="regression", num_classes=1, input_shape=[1], hidden_sizes=[1024],
                             activation="relu", init="kaiming", lr=0.003, scheduler="cosine")
    trainer = L.Trainer(accelerator="cpu", max_epochs=72, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    mse = trainer.test(model, datamodule=dm, verbose=False)[0]["test/mse"]
    variance = dm.datasets["test"].y.var().item()
    assert mse < 0.01 * variance  # one hidden layer explains more than 99% of the variance
    with torch.no_grad():
        assert model(torch.zeros(1, 1)).abs().item() < 0.1  # wave(0) = 0


@pytest.mark.slow
def test_fast_recipe_as_shipped_reaches_99_percent_as_its_hand_written_twin_does(data_dir, tmp_path):
    # recipes/lenet5_mnist_fast.yaml and benchmarks/handwritten_lenet5.py compute the same thing:
    # the time-to-accuracy benchmark compares their times only because of that.
    env = {**os.environ, "ZOO_DATA_DIR": str(data_dir)}
    zoo_run = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "--config", str(REPO / "recipes/lenet5_mnist_fast.yaml")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert zoo_run.returncode == 0, zoo_run.stderr[-3000:]
    by_hand = subprocess.run([sys.executable, "-m", "benchmarks.handwritten_lenet5"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert by_hand.returncode == 0, by_hand.stderr[-3000:]
    zoo_accuracy = float(zoo_run.stdout.split("test/acc = ")[-1].split(",")[0])
    assert zoo_accuracy >= 0.99
    assert by_hand.stdout.strip().endswith(f"test/acc = {zoo_accuracy:.4f}"), by_hand.stdout
