"""Recurrent models and time-series data: cells, packing, forecasting vs the naive baseline, splits, errors."""

import csv

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.fakes import quiet_trainer
from tests.test_cli import run_zoo
from zoo.data.sequence import NoisySineDataModule, TimeSeriesDataModule
from zoo.evaluate import evaluate_pretrained
from zoo.models.rnn import LSTMClassifier, LSTMForecaster
from zoo.nets.rnn import RNNNet
from zoo.weights import read_manifest

CELLS = ["rnn", "gru", "lstm"]


# ---- cells, shapes, gradients ------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_cell_gives_shapes_and_gradients(cell, bidirectional):
    torch.manual_seed(0)
    net = RNNNet(input_size=3, out_features=5, cell=cell, hidden_size=6, num_layers=2, bidirectional=bidirectional,
                 dropout=0.0, pooling="last")
    x = torch.randn(4, 7, 3, requires_grad=True)
    features = net.forward_features(x)
    assert features.shape == (4, 6 * (2 if bidirectional else 1)) == (4, net.num_features)
    out = net(x)
    assert out.shape == (4, 5)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # With last-state pooling the first step still influences the output (the recurrence carries it).
    assert x.grad[:, 0].abs().sum() > 0


def test_images_are_read_row_by_row():
    torch.manual_seed(0)
    image_model = LSTMClassifier(input_shape=[2, 5, 4], hidden_size=6, mean=[0.5, 0.2], std=[0.25, 0.5]).eval()
    sequence_model = LSTMClassifier(input_shape=[5, 8], hidden_size=6).eval()
    sequence_model.net.load_state_dict(image_model.net.state_dict())
    x = torch.rand(3, 2, 5, 4)
    normalized = (x - torch.tensor([0.5, 0.2]).view(1, 2, 1, 1)) / torch.tensor([0.25, 0.5]).view(1, 2, 1, 1)
    rows = torch.cat([normalized[:, 0], normalized[:, 1]], dim=-1)  # step r = row r of channel 0, then channel 1
    assert torch.allclose(image_model(x), sequence_model(rows), atol=1e-6)


def test_sequence_normalization_is_per_feature():
    torch.manual_seed(0)
    model = LSTMClassifier(input_shape=[None, 2], hidden_size=4, mean=[1.0, -2.0], std=[2.0, 0.5]).eval()
    plain = LSTMClassifier(input_shape=[None, 2], hidden_size=4).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(3, 6, 2)
    expected = plain((x - torch.tensor([1.0, -2.0])) / torch.tensor([2.0, 0.5]))
    assert torch.allclose(model(x), expected, atol=1e-6)


# ---- variable lengths: packing must equal running every sequence alone ----------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_packed_batch_equals_each_sequence_alone(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = LSTMClassifier(input_shape=[None, 3], num_classes=4, cell=cell, hidden_size=5, num_layers=2,
                           bidirectional=bidirectional, pooling=pooling).eval()
    lengths = torch.tensor([4, 9, 1, 6])
    x = torch.randn(4, 9, 3)
    padded = x.clone()
    for i, n in enumerate(lengths):
        padded[i, n:] = 1e3  # garbage in the padding: any leak would change the result visibly
    batched = model(padded, lengths=lengths)
    features = model.forward_features(padded, lengths=lengths)
    for i, n in enumerate(lengths):
        alone = x[i : i + 1, :n]
        assert torch.allclose(batched[i], model(alone)[0], atol=1e-5), f"sequence {i} (length {int(n)})"
        assert torch.allclose(features[i], model.forward_features(alone)[0], atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_full_lengths_equal_no_lengths(cell, pooling):
    # Full lengths take the packed path; without lengths the plain one: both must give the same features.
    torch.manual_seed(0)
    model = LSTMClassifier(input_shape=[None, 2], cell=cell, hidden_size=4, num_layers=2, bidirectional=True,
                           pooling=pooling).eval()
    x = torch.randn(3, 5, 2)
    assert torch.allclose(model(x), model(x, lengths=torch.full((3,), 5)), atol=1e-6)


# ---- forecasting -------------------------------------------------------------------------------

def test_forecaster_beats_the_naive_baseline_on_a_noisy_sine():
    torch.manual_seed(0)
    data = NoisySineDataModule(length=1500, period=30, noise=0.1, window=30, horizon=1, batch_size=32)
    model = LSTMForecaster(horizon=1, input_shape=[30, 1], hidden_size=24, lr=0.005)
    quiet_trainer(None, max_epochs=6, gradient_clip_val=1.0, limit_val_batches=0).fit(model, datamodule=data)
    result = quiet_trainer(None).test(model, datamodule=data, verbose=False)[0]
    # Optimal one-step MSE is the noise variance; the naive forecast pays it twice plus the wave's step.
    assert result["test/mse"] < 0.6 * result["test/naive_mse"], result
    assert result["test/mae"] < result["test/naive_mae"], result
    # The logged baseline is exactly "repeat the last value" on the test windows.
    x, y = data.datasets["test"][:]
    assert result["test/naive_mse"] == pytest.approx((x[:, -1, 0] - y[:, 0]).square().mean().item(), rel=1e-4)


def test_forecaster_predicts_the_horizon_and_rebuilds_from_its_hparams():
    model = LSTMForecaster(horizon=3, input_shape=[None, 1], hidden_size=4)
    assert model(torch.randn(2, 8, 1)).shape == (2, 3)
    rebuilt = LSTMForecaster(**dict(model.hparams))
    assert rebuilt.hparams == model.hparams
    assert model.naive_forecast(torch.arange(8.0).view(1, 8, 1)).tolist() == [[7.0, 7.0, 7.0]]


# ---- time-series splits ------------------------------------------------------------------------

def test_split_is_chronological_without_leakage_and_normalized_on_train_only():
    n = 200
    data = TimeSeriesDataModule(series=np.arange(n, dtype=float), window=8, horizon=3, val_fraction=0.2,
                                test_fraction=0.25, batch_size=16)
    data.setup()
    assert data.split_ranges == {"train": (0, 110), "val": (110, 150), "test": (150, 200)}
    train_values = np.arange(110, dtype=float)
    assert data.mean == pytest.approx(train_values.mean()) and data.std == pytest.approx(train_values.std())
    for split, (start, stop) in data.split_ranges.items():
        x, y = data.datasets[split][:]
        x, y = data.denormalize(x[..., 0]).round(), data.denormalize(y).round()
        pairs = torch.cat([x, y], dim=1)  # (M, window + horizon): consecutive series indices
        assert pairs.min() >= start and pairs.max() < stop, split  # never straddles a boundary
        assert torch.equal(pairs[:, 1:] - pairs[:, :-1], torch.ones_like(pairs[:, 1:]))
        assert len(pairs) == (stop - start) - 8 - 3 + 1  # every window of the part, no more
        assert pairs[0, 0] == start and pairs[-1, -1] == stop - 1


def test_normalization_ignores_values_after_the_training_part():
    series = np.sin(np.arange(300) / 5.0)
    changed = series.copy()
    changed[220:] *= 100  # only val/test values differ
    stats = []
    for values in (series, changed):
        data = TimeSeriesDataModule(series=values.tolist(), window=10)
        data.setup()
        stats.append((data.mean, data.std))
    assert stats[0] == stats[1]
    x0, _ = data.datasets["train"][:]
    assert x0.mean().abs() < 0.1 and (x0.std() - 1).abs() < 0.1


def test_csv_series(tmp_path):
    path = tmp_path / "series.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "load"])
        writer.writerows([f"day{i}", i * 2.0] for i in range(100))
    data = TimeSeriesDataModule(csv_path=str(path), column="load", window=5, normalize=False)
    data.setup()
    x, y = data.datasets["train"][:]
    assert x.shape == (70 - 5, 5, 1) and y.shape == (65, 1)
    assert x[0, :, 0].tolist() == [0, 2, 4, 6, 8] and y[0].tolist() == [10]


# ---- errors ------------------------------------------------------------------------------------

def test_data_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"series too short: 40 values give the val split only 6, but one window "
                                         r"needs window \+ horizon = 12"):
        TimeSeriesDataModule(series=list(range(40)), window=10, horizon=2).setup()
    with pytest.raises(ValueError, match="1 NaN/inf values \\(first at index 3\\)"):
        TimeSeriesDataModule(series=[0.0, 1.0, 2.0, float("nan")] + [0.0] * 100).setup()
    path = tmp_path / "s.csv"
    path.write_text("time,value\n0,1.5\n1,\n")
    with pytest.raises(ValueError, match="column 'load' not found in .*s.csv; columns: time, value"):
        TimeSeriesDataModule(csv_path=str(path), column="load").setup()
    with pytest.raises(ValueError, match="NaN"):
        TimeSeriesDataModule(csv_path=str(path), column="value").setup()
    with pytest.raises(ValueError, match="exactly one of series"):
        TimeSeriesDataModule()
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        TimeSeriesDataModule(series=[1.0], window=0)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction must be < 1"):
        TimeSeriesDataModule(series=[1.0], val_fraction=0.5, test_fraction=0.5)


def test_model_errors_are_clear():
    model = LSTMClassifier()
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\), got \(2, 28, 28\)"):
        model(torch.rand(2, 28, 28))
    with pytest.raises(TypeError, match="floating-point .* got dtype torch.uint8"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    sequences = LSTMClassifier(input_shape=[None, 3])
    with pytest.raises(ValueError, match=r"expects input of shape \(N, T, 3\), got \(2, 5, 4\)"):
        sequences(torch.rand(2, 5, 4))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\] .* got min 0 and max 5"):
        sequences(torch.rand(2, 5, 3), lengths=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \(2,\)"):
        sequences(torch.rand(2, 5, 3), lengths=torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match="cell must be one of rnn, gru, lstm, got 'transformer'"):
        LSTMClassifier(cell="transformer")
    with pytest.raises(ValueError, match="pooling must be one of last, mean, got 'max'"):
        LSTMClassifier(pooling="max")
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        LSTMClassifier(hidden_size=0)
    with pytest.raises(ValueError, match="mean/std need one value per input features \\(3\\), got 1"):
        LSTMClassifier(input_shape=[None, 3], mean=[0.0], std=[1.0])
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        LSTMForecaster(horizon=0)


def test_recipes_clip_gradients():
    recipes = sorted((REPO / "recipes").glob("lstm_*.yaml"))
    assert recipes
    for path in recipes:
        assert yaml.safe_load(path.read_text())["trainer"]["gradient_clip_val"] > 0, path.name


# ---- multi-process and shipped weights ---------------------------------------------------------

@pytest.mark.slow
def test_two_process_ddp_fit_of_the_forecaster(in_tmp):
    out = run_zoo(
        "fit", "--config", str(REPO / "recipes/lstm_forecaster_sine.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "2", "--data.length", "400", "--model.hidden_size", "8",
        cwd=in_tmp, env={"OMP_NUM_THREADS": "1"},
    )
    assert out.count("Test results of the best checkpoint") == 1  # rank zero only
    assert "test/naive_mse" in out
    with open(in_tmp / "runs" / "lstm_forecaster_sine" / "version_0" / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("val/mse")}
    assert epochs == {"0", "1"}


def test_shipped_lstm_mnist_reproduces_its_number_on_the_real_test_split(data_dir):
    entry = read_manifest()["lstm_mnist"]
    assert entry["class_path"] == "zoo.models.rnn.LSTMClassifier" and entry["hparams"]["cell"] == "lstm"
    results = evaluate_pretrained("lstm_mnist", data_dir=str(data_dir), accelerator="cpu")
    acc = results["test/acc"]
    assert acc["measured"] == pytest.approx(acc["recorded"], abs=1e-4)
    assert acc["measured"] >= 0.985
