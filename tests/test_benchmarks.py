"""Every benchmark script starts and explains its options (the measurements themselves are not tests)."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "common", "throughput"))


def test_every_benchmark_is_listed():
    assert {"overhead", "data_path", "time_to_accuracy", "inference", "ddp_scaling"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_as_documented(script):
    text = (REPO / "benchmarks" / f"{script}.py").read_text()
    assert f"python -m benchmarks.{script}" in text  # the command its docstring gives
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


@pytest.mark.slow
def test_readme_figures_are_what_the_shipped_weights_draw(data_dir, tmp_path):
    """python -m benchmarks.figures redraws the pictures of the README's pages (docs/models.md) from the shipped files: the same pixels."""
    from torchvision.io import read_image

    result = subprocess.run([sys.executable, "-m", "benchmarks.figures", "--out", str(tmp_path), "--data_dir",
                             str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    committed = sorted(p.name for p in (REPO / "benchmarks/figures").glob("*.png"))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == committed
    assert "cgan_samples.png" in committed and "cvae_samples.png" in committed
    for name in committed:
        drawn, shipped = read_image(str(tmp_path / name)).int(), read_image(str(REPO / "benchmarks/figures" / name)).int()
        assert drawn.shape == shipped.shape, name
        # Other torch versions may round a pixel's last bit differently; nothing more.
        assert (drawn - shipped).abs().max() <= 1, name
    for name in ("cgan_samples.png", "cvae_samples.png"):
        grid = read_image(str(tmp_path / name))
        assert grid.shape[1:] == (2 + 10 * 30, 2 + 10 * 30), name  # 10 x 10 images of 28 pixels, 2 pixels apart


@pytest.mark.slow
def test_generative_quality_table_repeats_the_manifest(data_dir):
    """The comparison table's rows of the GANs and the conditional VAE are the manifest's test numbers: the
    same seeded samples."""
    import re

    from zoo.weights import read_manifest

    result = subprocess.run([sys.executable, "-m", "benchmarks.generative_quality", "--data_dir", str(data_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = read_manifest()
    for name in ("gan_mnist", "cgan_mnist", "cvae_mnist"):
        row = next(line for line in result.stdout.splitlines() if line.startswith(f"| `{name}`"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        metrics = manifest[name]["metrics"]
        assert float(cells[1]) == pytest.approx(metrics["test/fid_lenet"], abs=0.01), row
        assert float(cells[2].rstrip("%")) == pytest.approx(100 * metrics["test/coverage_min"], abs=0.051), row  # printed to 0.1
        if "test/label_acc" in metrics:
            assert float(cells[4].rstrip("%")) == pytest.approx(100 * metrics["test/label_acc"], abs=0.005), row
    real = next(line for line in result.stdout.splitlines() if line.startswith("| real MNIST training images"))
    assert re.search(r"\| 2\.25 \|", real), real  # the floor of the scale, as docs/models.md quotes it


@pytest.mark.slow
def test_frozen_features_quick_run_gives_the_uncached_numbers():
    """python -m benchmarks.frozen_features --quick: a small VGG-16 on generated images, cached and uncached, the
    same validation accuracy and loss every epoch."""
    result = subprocess.run([sys.executable, "-m", "benchmarks.frozen_features", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the uncached run's 3 epoch(s) give the cached run's validation accuracy and loss" in result.stdout
    assert re.search(r"cached is [\d.]+x faster (to the target|per epoch after the first)", result.stdout)


def test_frozen_features_time_to_target_is_measured_derived_or_refused():
    """The time to an accuracy: measured where the uncached run got there, DERIVED from its mean epoch where it
    ran fewer epochs, and not given at all where the classifier stayed near chance."""
    from benchmarks.frozen_features import time_to_target

    def clock(accuracies, first, each):
        return [{"seconds": first + i * each, "val/acc": a} for i, a in enumerate(accuracies)]

    learning = [0.4, 0.6, 0.8, 0.9, 0.9]
    measured = time_to_target(clock(learning, 100.0, 1.0), clock(learning, 50.0, 50.0))
    assert "first reached at epoch 4" in measured and "DERIVED" not in measured
    assert "cached is 1.9x faster to the target, 50.0x per epoch" in measured  # 200 s against 103 s
    derived = time_to_target(clock(learning, 100.0, 1.0), clock(learning[:2], 50.0, 50.0))
    assert "DERIVED: measured 50.0 s per epoch (mean of 2) x 4 epochs" in derived
    assert "cached is 1.9x faster to the target" in derived
    chance = time_to_target(clock([0.3, 0.4, 0.35], 100.0, 1.0), clock([0.3], 50.0, 50.0))
    assert "the classifier did not learn" in chance and "to the target" not in chance
    assert "cached is 50.0x faster per epoch after the first" in chance

def _tabular_rows(out: str) -> dict[str, dict[str, list[str]]]:
    """benchmarks.tabular's tables: table name -> model -> its cells."""
    tables, name = {}, None
    for line in out.splitlines():
        if line.startswith("mlp_"):
            name = line.split()[0]
            tables[name] = {}
        elif name and line.startswith("| ") and not line.startswith("| model"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            tables[name][cells[0]] = cells[1:]
    return tables


def test_tabular_benchmark_scores_the_shipped_weights_as_the_manifest_does():
    """The shipped table weights score in the benchmark what their manifest records (its MSE is the RMSE's square over
    the training rows' variance), on the same test rows as scikit-learn's models."""
    from zoo.weights import read_manifest

    result = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--source", "shipped"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = _tabular_rows(result.stdout)
    assert set(tables) == {"mlp_wine", "mlp_breast_cancer", "mlp_diabetes"}
    assert set(tables["mlp_wine"]) == {"zoo MLP (64, shipped)", "LogisticRegression", "MLPClassifier",
                                       "HistGradientBoostingClassifier"}
    manifest = read_manifest()
    for name in ("mlp_wine", "mlp_breast_cancer"):
        assert float(tables[name]["zoo MLP (64, shipped)"][0]) == pytest.approx(manifest[name]["metrics"]["test/acc"], abs=5e-5)
    rmse = float(tables["mlp_diabetes"]["zoo MLP (16, shipped)"][0])
    std = manifest["mlp_diabetes"]["hparams"]["input_table"]["target"]["std"][0]
    assert (rmse / std) ** 2 == pytest.approx(manifest["mlp_diabetes"]["metrics"]["test/mse"], rel=1e-3)
    for name, cells in tables["mlp_diabetes"].items():
        assert 0 < float(cells[0]) < 100 and -1 < float(cells[1]) < 1, name  # RMSE in the target's units, R^2


@pytest.mark.slow
def test_tabular_benchmark_trains_the_recipes():
    result = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = _tabular_rows(result.stdout)
    assert "zoo MLP (64, recipe)" in tables["mlp_wine"] and "Ridge" in tables["mlp_diabetes"]
    assert 0.3 < float(tables["mlp_wine"]["zoo MLP (64, recipe)"][0]) <= 1  # 2 epochs: better than chance


def test_tabular_spread_over_splits_counts_where_a_model_matches_the_zoo_mlp():
    """benchmarks.tabular --split_seeds: each model's mean and spread over the splits, and on how many splits
    it scored at least the zoo MLP's (higher accuracy, lower RMSE)."""
    from benchmarks.tabular import spread_table

    def split(zoo, linear):
        return [{"model": "zoo MLP (64, recipe)", "rmse": zoo, "r2": 0.5}, {"model": "Ridge", "rmse": linear, "r2": 0.5}]

    text = spread_table("mlp_diabetes", [split(50.0, 52.0), split(54.0, 53.0), split(52.0, 52.0)])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")}
    assert text.startswith("mlp_diabetes: 3 splits (seeds 0..2)")
    assert rows["zoo MLP (64, recipe)"][0] == "52.00 +- 2.00" and rows["zoo MLP (64, recipe)"][2] == ""
    assert rows["Ridge"][0] == "52.33 +- 0.58" and rows["Ridge"][2] == "2 of 3"  # 53 < 54 and the tie
    accuracy = spread_table("mlp_wine", [[{"model": "zoo", "accuracy": 0.9}, {"model": "LogisticRegression", "accuracy": 1.0}],
                                         [{"model": "zoo", "accuracy": 1.0}, {"model": "LogisticRegression", "accuracy": 0.9}]])
    assert "| LogisticRegression | 0.9500 +- 0.0707 | 1 of 2 |" in accuracy


def test_checkpoint_rules_pick_the_first_best_epoch_and_the_last():
    """benchmarks.tabular --choose_checkpoint: the epoch each rule keeps, ties going to the first epoch as
    ModelCheckpoint's do, and the win counts of the rules over folds."""
    from benchmarks.tabular import chosen_epochs, rules_table

    curves = {"val/acc": {0: 0.8, 1: 0.9, 2: 0.9, 3: 0.85}, "val/loss": {0: 0.5, 1: 0.4, 2: 0.3, 3: 0.3}}
    assert chosen_epochs(curves, "classification") == {"best val/acc": 1, "best val/loss": 2, "last epoch": 3}
    assert chosen_epochs({"val/loss": curves["val/loss"]}, "regression") == {"best val/loss": 2, "last epoch": 3}

    def fold(first, last):
        return {"best val/loss": {"rmse": first, "epoch": 10}, "last epoch": {"rmse": last, "epoch": 99}}

    text = rules_table("mlp_diabetes", [fold(50.0, 52.0), fold(54.0, 53.0), fold(52.0, 52.0)])
    assert text.startswith("mlp_diabetes: 3 folds")
    assert "| best val/loss | 52.00 +- 2.00 | 10, 10, 10 |  | 2 of 3 |" in text  # 50 < 52 and the tie
    assert "| last epoch | 52.33 +- 0.58 | 99, 99, 99 | 2 of 3 |  |" in text


def test_choose_checkpoint_trains_each_fold_without_the_test_rows():
    result = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--quick", "--recipes", "mlp_wine",
                             "--choose_checkpoint", "2"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "mean" not in line]
    assert [line.split("|")[1].strip() for line in rows] == ["best val/acc", "best val/loss", "last epoch"]
    assert all(line.split("|")[3].strip() == "1, 1" for line in rows[2:])  # --quick: 2 epochs, the last is 1
    refused = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--choose_checkpoint", "1"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "2 folds or more, got 1" in refused.stderr


def test_settings_table_counts_the_folds_where_a_setting_matches_the_linear_model():
    from benchmarks.tabular import settings_table

    def fold(mlp, linear):
        return {"last epoch": {"rmse": mlp, "epoch": 99}, "linear": {"rmse": linear}}

    text = settings_table("mlp_diabetes", {"64 hidden": [fold(50.0, 52.0), fold(54.0, 53.0)],
                                           "16 hidden": [fold(52.0, 52.0), fold(52.0, 53.0)]})
    assert text.startswith("mlp_diabetes: 2 folds")
    assert "| 64 hidden | 52.00 +- 2.83 | 1 of 2 |" in text
    assert "| 16 hidden | 52.00 +- 0.00 | 2 of 2 |" in text  # a tie counts
    assert text.splitlines()[-1] == "| the linear model | 52.50 +- 0.71 | |"


def test_choose_settings_scores_every_setting_beside_the_linear_model():
    from benchmarks.tabular import SETTINGS

    result = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--quick", "--recipes", "mlp_wine",
                             "--choose_settings", "2"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ") and "mean" not in line]
    assert rows == [*SETTINGS, "the linear model"]
    both = subprocess.run([sys.executable, "-m", "benchmarks.tabular", "--choose_settings", "2", "--choose_checkpoint", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "give one of them" in both.stderr
