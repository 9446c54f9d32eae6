"""What a run prints: the network's layers with their shapes and FLOPs, a progress bar of metrics only,
and none of the warnings meant for programmers."""

import warnings

import lightning as L
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo
from tests.fakes import RandomImages
from zoo.callbacks import LayerSummary, ProgressBar, default_callbacks, measure_layers
from zoo.runtime import quiet_programmer_messages

pytestmark = pytest.mark.compat  # Lightning's summary and progress-bar callbacks


def test_summary_lists_the_layers_with_shapes_and_flops_and_no_metrics():
    model = zoo.create_model("lenet5")
    table = LayerSummary().table(model)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip() and "." in line.split()[0]}
    assert "net.features.0" in rows and "Conv2d" in rows["net.features.0"]
    assert "[1, 1, 28, 28]  [1, 6, 28, 28]" in " ".join(table.split("net.features.0")[1].split("\n")[0].split("  "))
    assert not any(name in table for name in ("train_metrics", "val_metrics", "test_metrics", "Modules in", "Total FLOPs"))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, 1, 28, 28))
    _, flops, total = measure_layers(model, ["net.features.0", "net.head"], depth=3)
    assert total == counter.get_total_flops() > 0
    assert flops["net.features.0"] == 2 * 6 * 28 * 28 * 25  # a multiply and an add per weight and output pixel
    assert flops["net.head"] == 2 * 84 * 10


@pytest.mark.parametrize("name, hparams", [("gan", {}), ("vae", {"num_classes": 10}), ("lstm_forecaster", {})])
def test_summary_of_models_whose_forward_takes_more_or_other_inputs(name, hparams):
    table = LayerSummary().table(zoo.create_model(name, **hparams))  # shapes and FLOPs where one example tells them
    assert "trainable params" in table and "metrics" not in table


def test_fit_prints_the_layer_summary_instead_of_lightnings(tmp_path, caplog):
    model = zoo.create_model("lenet5")
    callbacks = default_callbacks(monitor=model.monitor, mode=model.monitor_mode, lr_monitor=False, patience=None)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                        default_root_dir=tmp_path, callbacks=callbacks)
    with caplog.at_level("INFO"):
        trainer.fit(model, datamodule=RandomImages())
    summaries = [cb for cb in trainer.callbacks if isinstance(cb, L.pytorch.callbacks.ModelSummary)]
    assert [type(cb) for cb in summaries] == [LayerSummary]
    assert "net.features.0" in caplog.text and "FLOPs per forward pass" in caplog.text
    bar = next(cb for cb in trainer.callbacks if isinstance(cb, ProgressBar))
    assert "v_num" in L.pytorch.callbacks.RichProgressBar.get_metrics(bar, trainer, model)  # Lightning's own bar
    assert set(bar.get_metrics(trainer, model)) == {"val/loss", "val/acc"}


def test_no_summary_when_the_trainer_is_told_so():
    assert not any(isinstance(cb, LayerSummary) for cb in default_callbacks(summary=False))


def test_the_zoo_command_silences_ddp_grad_strides_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_programmer_messages()
        warnings.warn("Grad strides do not match bucket view strides. This may indicate grad was not created "
                      "according to the gradient layout contract", UserWarning)
        warnings.warn("something a user should read", UserWarning)
    assert [str(w.message) for w in caught] == ["something a user should read"]
