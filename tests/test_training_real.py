"""Short training runs on the real MNIST that must clear an accuracy bar."""

import lightning as L
import pytest
import torch

import zoo


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
