"""What a run records of its training: dynamics.csv, TensorBoard's histograms and projector, W&B's run,
all in the run folder, read back with each tool's own readers."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from google.protobuf import text_format
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, SCALARS, EventAccumulator
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

import zoo
from tests.commands import zoo_command
from zoo.callbacks import EmbeddingProjector, TrainingDynamics
from zoo.callbacks.dynamics import dead_units
from zoo.runs import metrics_rows

pytestmark = pytest.mark.compat  # the loggers' file formats and readers
RUN = Path("runs/lenet5_digits/version_0")
FIT = ["fit", "--config", "lenet5_digits", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"]


def fit(*args, cwd):
    result = zoo_command(*FIT, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def read_dynamics(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["epoch", "step", "layer", "quantity", "value"]
        return list(reader)


def parameterised_layers() -> set[str]:
    model = zoo.create_model("lenet5")
    return {name for name, module in model.named_modules() if name and next(module.parameters(recurse=False), None) is not None}


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory) -> Path:
    """``zoo fit --config lenet5_digits --trainer.max_epochs 2 --logger tensorboard`` in an empty folder."""
    folder = tmp_path_factory.mktemp("tensorboard")
    fit("--trainer.max_epochs", "2", "--logger", "tensorboard", cwd=folder)
    return folder


def test_everything_lands_in_the_run_folder(tensorboard_run):
    files = [p.relative_to(tensorboard_run) for p in tensorboard_run.rglob("*") if p.is_file()]
    assert files and all(RUN in p.parents for p in files), files
    names = {p.name for p in files}
    assert {"dynamics.csv", "projector_config.pbtxt", "config.yaml", "last.ckpt"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)


def test_dynamics_csv_has_every_layer_every_epoch(tensorboard_run):
    rows = read_dynamics(tensorboard_run / RUN / "dynamics.csv")
    seen = {(row["layer"], row["quantity"], int(row["epoch"])) for row in rows}
    assert len(seen) == len(rows)  # no duplicates
    for layer in parameterised_layers():
        for quantity in ("weight_norm", "grad_norm"):
            assert {(layer, quantity, 0), (layer, quantity, 1)} <= seen, (layer, quantity)
    dead = [row for row in rows if row["quantity"] == "dead_share"]
    assert {row["layer"] for row in dead} == {"net.features.2", "net.features.5", "net.classifier.2", "net.classifier.5"}
    assert all(0 <= float(row["value"]) <= 1 for row in dead)
    assert all(float(row["value"]) > 0 for row in rows if row["quantity"] != "dead_share")
    assert {row["quantity"] for row in rows} == {"weight_norm", "grad_norm", "dead_share"}


def test_tensorboard_holds_histograms_of_every_layer_per_epoch(tensorboard_run):
    events = EventAccumulator(str(tensorboard_run / RUN), size_guidance={HISTOGRAMS: 0, SCALARS: 0})
    events.Reload()
    rows = read_dynamics(tensorboard_run / RUN / "dynamics.csv")
    expected = ({f"weights/{layer}" for layer in parameterised_layers()}
                | {f"activations/{row['layer']}" for row in rows if row["quantity"] == "dead_share"})
    assert expected <= set(events.Tags()[HISTOGRAMS])
    for tag in expected:
        assert len(events.Histograms(tag)) == 2, tag  # one per epoch
    assert {"val/acc", "val/loss", "train/loss_epoch"} <= set(events.Tags()[SCALARS])


def test_tensorboard_projector_holds_penultimate_features(tensorboard_run):
    run = tensorboard_run / RUN
    config = text_format.Parse((run / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert len(config.embeddings) == 1
    embedding = config.embeddings[0]
    features = [line.split("\t") for line in (run / embedding.tensor_path).read_text().splitlines()]
    datamodule = zoo.create_datamodule("digits", batch_size=64, shift=2)
    datamodule.setup("fit")
    labels = torch.cat([y for _, y in datamodule.val_dataloader()])[:500].tolist()
    assert len(features) == len(labels) and {len(row) for row in features} == {84}  # LeNet-5's penultimate width
    metadata = (run / embedding.metadata_path).read_text().splitlines()
    assert [int(label) for label in metadata] == labels
    side = math.ceil(math.sqrt(len(labels))) * 28
    assert list(embedding.sprite.single_image_dim) == [28, 28]
    assert Image.open(run / embedding.sprite.image_path).size == (side, side)


def test_long_form_logger_writes_into_the_run_folder_and_resumes_there(tmp_path):
    fit("--trainer.max_epochs", "1", "--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger", cwd=tmp_path)
    resumed = fit("--trainer.max_epochs", "2", "--trainer.logger", "TensorBoardLogger", "--ckpt_path", "last", cwd=tmp_path)
    assert "warn" not in resumed.stderr.lower(), resumed.stderr  # nothing meant for programmers
    assert sorted(p.name for p in (tmp_path / "runs" / "lenet5_digits").iterdir()) == ["version_0"]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    rows = read_dynamics(tmp_path / RUN / "dynamics.csv")
    keys = [(row["layer"], row["quantity"], row["epoch"]) for row in rows]
    assert len(keys) == len(set(keys))  # the resumed run continued the file without duplicates
    assert {row["epoch"] for row in rows} == {"0", "1"}
    assert len(list((tmp_path / RUN).glob("events.out.tfevents*"))) >= 2  # both runs wrote there
    # metrics.csv beside TensorBoard's files, for the run page, with the first run's epoch kept
    assert {row["epoch"] for row in metrics_rows(tmp_path / RUN / "metrics.csv") if "val/acc" in row} == {0, 1}


def test_a_logger_a_recipe_names_without_save_dir_writes_into_the_run_folder(tmp_path):
    (tmp_path / "mine.yaml").write_text("trainer:\n  max_epochs: 1\n  logger:\n"
                                         "    class_path: lightning.pytorch.loggers.TensorBoardLogger\n")
    fit("--config", "mine.yaml", cwd=tmp_path)
    run = tmp_path / "runs" / "mine" / "version_0"  # the run is named after the last recipe
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml", "runs"]
    assert list(run.glob("events.out.tfevents*")) and (run / "metrics.csv").is_file()


def short_fit(model, tmp_path, callbacks, logger, epochs=1):
    datamodule = zoo.create_datamodule("digits", batch_size=32)
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=4, limit_val_batches=2, logger=logger,
                        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(model, datamodule=datamodule)
    return trainer


def test_a_killed_relu_layer_is_all_dead(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("lenet5", num_classes=10)
    with torch.no_grad():
        model.net.classifier[1].bias.fill_(-1e4)  # the ReLU after it (net.classifier.2) never fires
    logger = CSVLogger(tmp_path, name="run")
    short_fit(model, tmp_path, [TrainingDynamics(grad_every_n_steps=2)], logger)
    rows = read_dynamics(Path(logger.log_dir) / "dynamics.csv")
    dead = {row["layer"]: float(row["value"]) for row in rows if row["quantity"] == "dead_share"}
    assert dead["net.classifier.2"] == 1.0
    assert dead["net.features.2"] < 1.0
    assert (Path(logger.log_dir) / "metrics.csv").is_file()  # next to the metrics


def test_saturated_units_are_dead():
    x = torch.tensor([[0.995, 0.5, -0.999], [0.999, 0.995, -0.995]])  # (N=2, F=3)
    assert dead_units(torch.nn.Tanh(), x).tolist() == [True, False, True]
    assert dead_units(torch.nn.Sigmoid(), torch.tensor([[0.005, 0.5], [0.001, 0.995]])).tolist() == [True, False]
    maps = torch.ones(2, 3, 4, 4)  # (N, C, H, W): a dead channel is <= 0 everywhere in every example
    maps[:, 1] = -1
    maps[0, 2, 0, 0] = -1
    assert dead_units(torch.nn.ReLU(), maps).tolist() == [False, True, False]


def test_an_autoencoder_projects_its_codes(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("ae", code_size=6)
    logger = TensorBoardLogger(tmp_path, name="ae")
    short_fit(model, tmp_path, [EmbeddingProjector(num_images=50)], logger)
    run = Path(logger.log_dir)
    config = text_format.Parse((run / "projector_config.pbtxt").read_text(), ProjectorConfig())
    rows = (run / config.embeddings[0].tensor_path).read_text().splitlines()
    assert len(rows) == 50 and {len(row.split("\t")) for row in rows} == {6}


def test_wandb_offline_run_lives_in_the_run_folder(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, "-m", "zoo.cli", *FIT, "--trainer.max_epochs", "1", "--logger", "wandb"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    runs = list((tmp_path / RUN / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # The histograms are in the run's log (written for `wandb sync`); the projector's table is a public file.
    log = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"histogram" in log
    for tag in ("weights/net.head", "weights/net.features.0", "activations/net.classifier.2"):
        assert tag.encode() in log, tag
    table = json.loads(next((runs[0] / "files" / "media" / "table" / "embedding").glob("validation_*.table.json")).read_text())
    assert table["columns"] == ["label", *(f"f{i}" for i in range(84))]
    assert len(table["data"]) == 144 and {row[0] for row in table["data"]} == set(range(10))  # the digits' validation split
    assert (tmp_path / RUN / "dynamics.csv").is_file()
    # metrics.csv beside W&B's run, and so the run page with the curves
    assert any("val/acc" in row for row in metrics_rows(tmp_path / RUN / "metrics.csv"))
    assert "val/acc" in (tmp_path / RUN / "report.html").read_text()
