"""Tables: the preprocessing fitted on the training rows only, carried by the weights, and applied by
`zoo infer` to raw rows; scikit-learn's tables by name; a checkpoint, a save_pretrained folder and a
shipped weight each predicting on raw rows."""

import csv
import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

import zoo
import zoo.checkpointing
from tests.commands import zoo_command
from zoo.data import TabularDataModule
from zoo.data.tabular import decode_output, encode_rows

pytestmark = pytest.mark.compat  # reading CSV and Parquet files (pandas, pyarrow), checkpoints, the CLI


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A table with what users' tables hold: an id, a numeric column with gaps, a text column, an integer
    label, a float target, and a split column whose test rows differ from the training rows."""
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * 140 + ["val"] * 30 + ["test"] * 30)
    x = rng.normal(10.0, 2.0, n)
    x[split == "test"] += 100.0  # a statistic taken over all rows would move far from the training one
    x[rng.random(n) < 0.1] = np.nan
    size = rng.normal(0.0, 1.0, n)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[rng.random(n) < 0.1] = None
    color[np.flatnonzero(split == "test")[:3]] = "purple"  # a category training never saw
    label = (np.nan_to_num(x, nan=10.0) > 10).astype(int) + (color == "red").astype(int)
    price = 3.0 * size + 50.0 + rng.normal(0, 0.1, n)
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x": x, "size": size, "color": color, "label": label,
                         "price": price, "split": split})


def test_statistics_come_from_the_training_rows_only():
    frame = _table()
    dm = TabularDataModule(frame=frame, target="label", split_column="split")
    pre = dm.prepare_table()
    train = frame[frame.split == "train"]
    x = {c["name"]: c for c in pre["columns"]}["x"]
    filled = train.x.fillna(train.x.median())
    assert x["median"] == pytest.approx(train.x.median()) and x["mean"] == pytest.approx(filled.mean())
    assert x["std"] == pytest.approx(filled.std(ddof=0))
    assert abs(x["mean"] - frame.x.mean()) > 10  # the test rows' values did not leak into the statistics
    assert x["missing_indicator"] and "x_missing" in pre["features"]
    color = {c["name"]: c for c in pre["columns"]}["color"]
    assert color["kind"] == "categorical" and color["categories"] == ["blue", "green", "red"]  # not purple
    # columns in the table's order (the other target, price, is an input here; id never is), then the gap flags
    assert pre["features"] == ["x", "size", "color=blue", "color=green", "color=red", "color=missing", "price", "x_missing"]
    assert pre["target"] == {"columns": ["label"], "task": "classification", "classes": ["0", "1", "2"]}
    assert json.loads(json.dumps(pre)) == pre  # plain data

    dm.setup("fit")
    test = frame[frame.split == "test"].reset_index(drop=True)
    encoded = dm.datasets["test"].x
    assert encoded.shape == (30, 8) and encoded.dtype == torch.float32
    purple = torch.tensor((test.color == "purple").to_numpy())
    assert torch.all(encoded[purple][:, 2:6] == 0)  # an unknown category is all zeros
    missing = torch.tensor(test.color.isna().to_numpy())
    assert torch.all(encoded[missing][:, 5] == 1) and torch.all(encoded[~missing][:, 5] == 0)
    gaps = torch.tensor(test.x.isna().to_numpy())
    assert torch.all(encoded[gaps][:, 7] == 1) and torch.all(encoded[~gaps][:, 7] == 0)
    assert torch.allclose(encoded[gaps][:, 0], torch.tensor((x["median"] - x["mean"]) / x["std"]))
    present = test.x.dropna()
    assert torch.allclose(encoded[~gaps][:, 0], torch.tensor(((present - x["mean"]) / x["std"]).to_numpy(), dtype=torch.float32))
    assert torch.equal(dm.datasets["test"].y, torch.tensor(test.label.to_numpy()))


def test_classification_and_regression_are_told_apart():
    frame = _table().drop(columns="split")
    # x, size, 5 colors (purple is in the random training rows), price, x_missing
    assert TabularDataModule(frame=frame, target="label").model_settings() == {
        "input_shape": [9], "task": "multiclass", "num_classes": 3}
    regression = TabularDataModule(frame=frame, target="price")
    assert regression.model_settings() == {"input_shape": [9], "task": "regression", "num_classes": 1}
    pre = regression.prepare_table()
    train = regression.split_frames()["train"]
    assert pre["target"]["mean"] == [pytest.approx(train.price.mean())]
    text = frame.assign(label=frame.label.map({0: "low", 1: "mid", 2: "high"}))
    assert TabularDataModule(frame=text, target="label").class_names == ("high", "low", "mid")
    assert TabularDataModule(frame=frame, target="label", task="regression").model_settings()["task"] == "regression"
    assert TabularDataModule(frame=frame, target=["price", "size"]).model_settings()["num_classes"] == 2


@pytest.mark.parametrize("name, task, rows, features, classes", [
    ("wine", "multiclass", 178, 13, 3), ("iris", "multiclass", 150, 4, 3),
    ("breast_cancer", "multiclass", 569, 30, 2), ("diabetes", "regression", 442, 10, 1)])
def test_scikit_learns_tables_by_name(name, task, rows, features, classes):
    dm = TabularDataModule(table=name, val_size=0.1, test_size=0.2)
    assert dm.model_settings() == {"input_shape": [features], "task": task, "num_classes": classes}
    splits = dm.split_frames()
    assert sum(len(s) for s in splits.values()) == rows and len(splits["test"]) == round(0.2 * rows)
    assert (len(dm.class_names) == classes) == (task == "multiclass")
    if name == "iris":
        assert dm.class_names == ("setosa", "versicolor", "virginica")
    again = TabularDataModule(table=name, val_size=0.1, test_size=0.2)
    assert again.split_frames()["test"].index.equals(splits["test"].index)  # seeded


def _predictions(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_fit_then_infer_on_raw_rows_gives_the_models_predictions(tmp_path):
    frame = _table()
    frame.drop(columns="split").to_csv(tmp_path / "table.csv", index=False)
    rows = frame.drop(columns=["label", "split"]).iloc[:25]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    fit = zoo_command("fit", "--config", "mlp_wine", "--data.path", "table.csv", "--data.target", "label",
                      "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false",
                      "--trainer.enable_model_summary", "false", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "target label -> classification into 3 classes" in fit.stdout
    checkpoint = tmp_path / "runs/mlp_wine/version_0/checkpoints/last.ckpt"
    model = zoo.checkpointing.model_from_checkpoint(checkpoint).eval()
    assert model.input_shape == (len(model.table_contract["features"]),) == (9,)
    assert model.class_names == ["0", "1", "2"]
    assert model.table_contract["features"][0] == "x"
    with torch.no_grad():
        expected = decode_output(model(encode_rows(rows, model.table_contract)), model.table_contract)

    model.save_pretrained(tmp_path / "folder")
    rows.to_parquet(tmp_path / "rows.parquet")
    for weights, source in ((checkpoint, "rows.csv"), ("folder", "rows.csv"), ("folder", "rows.parquet")):
        out = zoo_command("infer", str(weights), source, "--output", "preds.csv", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "ignored: price" not in out.stderr  # price is an input of this model
        got = _predictions(tmp_path / "preds.csv")
        assert [row["id"] for row in got] == list(rows.id)  # one prediction per row, labelled by its id
        assert [row["class"] for row in got] == [e["class"] for e in expected]
        assert [float(row["probability"]) for row in got] == pytest.approx([e["probability"] for e in expected], abs=1e-5)

    extra = rows.drop(columns="id").assign(note="hello")  # no id column: rows are numbered; extra columns ignored
    extra.to_csv(tmp_path / "extra.csv", index=False)
    out = zoo_command("infer", "folder", "extra.csv", cwd=tmp_path)
    assert out.returncode == 0 and "columns the model does not use, ignored: note" in out.stderr
    assert out.stdout.splitlines()[1].split()[:2] == ["0", expected[0]["class"]]


def test_a_regressor_predicts_in_the_targets_units(tmp_path):
    frame = _table().drop(columns="split")
    rows = frame.drop(columns="price").iloc[:10]
    dm = TabularDataModule(frame=frame, target="price", batch_size=32)
    model = zoo.create_model("mlp", hidden_sizes=[16], **dm.model_settings())
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert model.table_contract == dm.prepare_table()  # adopted when training started
    model.save_pretrained(tmp_path / "price")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = zoo_command("infer", "price", "rows.csv", "--output", "preds.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "preds.json").read_text())
    target = model.table_contract["target"]
    with torch.no_grad():
        standardised = model.eval()(encode_rows(rows, model.table_contract))[:, 0]
    assert [row["price"] for row in got] == pytest.approx((standardised * target["std"][0] + target["mean"][0]).tolist(),
                                                          abs=1e-4)
    assert target["mean"][0] == pytest.approx(50.0, abs=0.5)  # the units of the table, not standardised ones


def test_the_shipped_table_weights_predict_on_raw_rows(tmp_path):
    dm = TabularDataModule(**zoo.weights.read_manifest()["mlp_wine"]["datamodule"]["init_args"])
    test = dm.split_frames()["test"]
    truth = test.target.tolist()
    test.drop(columns="target").to_csv(tmp_path / "wine.csv")  # the index becomes an unnamed column: ignored
    out = zoo_command("infer", "mlp_wine", "wine.csv", "--output", "preds.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = _predictions(tmp_path / "preds.csv")
    accuracy = np.mean([row["class"] == t for row, t in zip(got, truth)])
    assert accuracy == pytest.approx(zoo.weights.read_manifest()["mlp_wine"]["metrics"]["test/acc"], abs=1e-6)
    regressor = zoo.load_pretrained("mlp_diabetes")
    assert regressor.table_contract["target"]["task"] == "regression" and regressor.input_shape == (10,)
    entry = zoo.weights.read_manifest()["mlp_diabetes"]
    test = TabularDataModule(**entry["datamodule"]["init_args"]).split_frames()["test"]
    rows, ignored = zoo.predict_table("mlp_diabetes", test)  # a DataFrame, in the target's units
    assert ignored == [] and [row["id"] for row in rows] == list(test.index)
    error = np.array([row["target"] for row in rows]) - test.target.to_numpy()
    std = regressor.table_contract["target"]["std"][0]
    assert np.mean(error ** 2) / std ** 2 == pytest.approx(entry["metrics"]["test/mse"], rel=1e-4)


def test_the_report_of_table_weights_counts_rows(tmp_path):
    """zoo evaluate --report on a table's weights: its test samples are rows, and no picture pretends they are images."""
    out = zoo_command("evaluate", "mlp_wine", "--report", "report", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["test_unit"] == "rows" and report["test_images"] == 36
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == ["confusion_matrix.png"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "evaluated on the test split (36 rows)" in page and "test rows" in page and "images" not in page


def test_a_model_built_without_the_tables_settings_is_told_so():
    from zoo.errors import UsageError

    dm = TabularDataModule(table="iris")
    model = zoo.create_model("mlp", hidden_sizes=[8], num_classes=3)  # input_shape left at MNIST's
    trainer = L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(UsageError, match=r"takes inputs of shape \(1, 28, 28\), but the table's rows are 4 features"):
        trainer.fit(model, datamodule=dm)


def test_test_checkpoint_chooses_the_weights_that_are_tested_and_published(tmp_path):
    """The table recipes keep the last epoch's weights (test_checkpoint: last); --test_checkpoint best keeps
    the best by validation. Either way the published file holds the very weights that were tested."""
    from safetensors.torch import load_file

    from zoo.cards import model_card
    from zoo.runs import RUN_RECORD

    def fit(*extra):
        out = zoo_command("fit", "--config", "mlp_wine", "--trainer.max_epochs", "12", "--publish", "wine",
                          "--weights_dir", "w", "--trainer.enable_progress_bar", "false", *extra, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        run = sorted((tmp_path / "runs/mlp_wine").iterdir())[-1] / "checkpoints"
        published = load_file(tmp_path / "w/wine.safetensors")
        manifest = json.loads((tmp_path / "w/manifest.json").read_text())["wine"]
        return out.stdout, run, published, manifest

    def same(published, checkpoint):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        return all(torch.equal(published[key], state[key]) for key in published)

    stdout, run, published, manifest = fit()
    best = next(run.glob("best-*.ckpt"))
    assert "epoch011" not in best.name  # the best epoch is not the last, so the two choices differ
    assert "Test results of the final weights:" in stdout
    assert same(published, run / "last.ckpt") and not same(published, best)
    assert manifest["training"]["kept"] == "last" and manifest["recipe"] == "zoo fit --config mlp_wine --trainer.max_epochs 12 " \
        "--trainer.enable_progress_bar false"
    assert "were scored every epoch to follow the run (the weights are those of its last epoch)" in model_card("wine", manifest)

    stdout, run, published, manifest = fit("--test_checkpoint", "best")
    best = next(run.glob("best-*.ckpt"))
    assert f"Test results of the best checkpoint {best.relative_to(tmp_path)}:" in stdout
    assert same(published, best) and not same(published, run / "last.ckpt")
    assert manifest["training"]["kept"] == "best"
    assert "picked the best checkpoint" in model_card("wine", manifest)

    # a ModelCheckpoint of the user's, keeping every epoch, changes nothing: the zoo's best checkpoint is tested
    stdout, run, published, _ = fit("--test_checkpoint", "best", "--trainer.callbacks+=ModelCheckpoint",
                                    "--trainer.callbacks.monitor=null", "--trainer.callbacks.save_top_k=-1",
                                    "--trainer.callbacks.filename=every-{epoch:03d}")
    assert len(list(run.glob("every-*.ckpt"))) == 12
    best = next(run.glob("best-*.ckpt"))
    assert f"Test results of the best checkpoint {best.relative_to(tmp_path)}:" in stdout
    assert same(published, best)
    page = json.loads((run.parent / RUN_RECORD).read_text())  # the run page's confusion matrix: the same checkpoint
    assert page["monitor"] == "val/acc" and page["confusion"]["checkpoint"] == best.name
