"""The zoo's MLP on tables against scikit-learn, on the shipped table recipes' own splits.

    python -m benchmarks.tabular                    # train each recipe (mlp_wine, mlp_breast_cancer, mlp_diabetes) here
    python -m benchmarks.tabular --source shipped   # the shipped weights instead of new runs
    python -m benchmarks.tabular --quick            # 2 epochs: checks that it runs, measures nothing
    python -m benchmarks.tabular --split_seeds 9    # also 9 other splits of each table: each model's mean and spread

For each table, the recipe's TabularDataModule splits the rows (its seed) and fits the preprocessing
on the training rows; every model sees those same features: the zoo MLP (trained by ``zoo fit
--config <recipe>``, its best checkpoint by validation, as the recipe publishes it), and scikit-learn's
linear model (LogisticRegression / Ridge), MLP (MLPClassifier / MLPRegressor) and gradient boosting
(HistGradientBoostingClassifier / Regressor) with their default settings, fitted on the training rows
(scikit-learn's MLP and boosting hold out their own validation share only where they early-stop; by
default they do not). All are scored on the test rows: accuracy for classification, RMSE and R^2 in
the target's own units for regression.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

RECIPES = ("mlp_wine", "mlp_breast_cancer", "mlp_diabetes")


def recipe_datamodule(recipe: str, split_seed: int | None = None):
    """The TabularDataModule of a shipped recipe, as ``zoo fit --config <recipe>`` builds it (with another
    seed of its split, where ``split_seed`` is given)."""
    import yaml

    from zoo.data import TabularDataModule
    from zoo.recipes import recipe_path

    settings = yaml.safe_load(recipe_path(recipe).read_text())["data"]["init_args"]
    if split_seed is not None:
        settings["seed"] = split_seed
    return TabularDataModule(**settings)


def zoo_mlp(recipe: str, source: str, quick: bool, split_seed: int | None = None) -> tuple[object, float]:
    """The zoo MLP of ``recipe``: trained here by the recipe (its best checkpoint), or the shipped weights;
    and the seconds its training took (0 for shipped weights)."""
    import zoo
    from zoo.checkpointing import model_from_checkpoint
    from zoo.cli import main

    if source == "shipped":
        return zoo.load_pretrained(recipe), 0.0
    with tempfile.TemporaryDirectory() as folder:
        args = ["fit", "--config", recipe, "--trainer.default_root_dir", folder, "--trainer.enable_progress_bar",
                "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
                "--test_after_fit", "false"]
        if quick:
            args += ["--trainer.max_epochs", "2"]
        if split_seed is not None:
            args += ["--data.init_args.seed", str(split_seed)]
        started = time.perf_counter()
        # main(args) reads args, not the script's own command line (which LightningCLI would warn about)
        with contextlib.redirect_stdout(io.StringIO()), mock.patch.object(sys, "argv", sys.argv[:1]):
            status = main(args)
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"zoo fit --config {recipe} failed (status {status})")
        best = sorted(Path(folder).rglob("best-*.ckpt"))
        return model_from_checkpoint(best[-1]).eval(), seconds


def sklearn_models(task: str) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if task == "classification":
        return {"LogisticRegression": LogisticRegression(max_iter=5000),
                "MLPClassifier": MLPClassifier(max_iter=2000, random_state=0),
                "HistGradientBoostingClassifier": HistGradientBoostingClassifier(random_state=0)}
    return {"Ridge": Ridge(), "MLPRegressor": MLPRegressor(max_iter=2000, random_state=0),
            "HistGradientBoostingRegressor": HistGradientBoostingRegressor(random_state=0)}


def scores(task: str, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """accuracy (classification), or RMSE and R^2 (regression, in the target's units)."""
    if task == "classification":
        return {"accuracy": float((predicted == truth).mean())}
    rmse = float(np.sqrt(((predicted - truth) ** 2).mean()))
    r2 = float(1 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
    return {"rmse": rmse, "r2": r2}


def benchmark(recipe: str, source: str, quick: bool, split_seed: int | None = None) -> list[dict[str, object]]:
    """One row per model on ``recipe``'s test rows: its name, scores and training seconds."""
    import warnings

    dm = recipe_datamodule(recipe, split_seed)
    with contextlib.redirect_stdout(io.StringIO()):
        dm.setup("fit")
    pre = dm.prepare_table()
    task = pre["target"]["task"]
    x_train, y_train = dm.datasets["train"].x.numpy(), dm.datasets["train"].y.numpy()
    x_test, y_test = dm.datasets["test"].x.numpy(), dm.datasets["test"].y.numpy()
    if task == "regression":  # standardised targets back in the target's units
        mean, std = np.asarray(pre["target"]["mean"]), np.asarray(pre["target"]["std"])
        y_train, y_test = y_train[:, 0], (y_test * std + mean)[:, 0]
    rows = []
    model, seconds = zoo_mlp(recipe, source, quick, split_seed)
    with torch.no_grad():
        output = model(torch.from_numpy(x_test))
    predicted = output.argmax(1).numpy() if task == "classification" else (output.numpy() * std + mean)[:, 0]
    hidden = "x".join(str(h) for h in model.hparams.hidden_sizes)
    rows.append({"model": f"zoo MLP ({hidden}, {'shipped' if source == 'shipped' else 'recipe'})",
                 **scores(task, predicted, y_test), "seconds": seconds})
    for name, estimator in sklearn_models(task).items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of the defaults: the scores say what they reach
            estimator.fit(x_train, y_train)
        seconds = time.perf_counter() - started
        predicted = estimator.predict(x_test)
        if task == "regression":
            predicted = predicted * std[0] + mean[0]
        rows.append({"model": name, **scores(task, predicted, y_test), "seconds": seconds})
    return rows


def table(recipe: str, rows: list[dict[str, object]], n_train: int, n_test: int) -> str:
    keys = [k for k in ("accuracy", "rmse", "r2") if k in rows[0]]
    lines = [f"{recipe} ({n_train} training rows, {n_test} test rows)",
             f"| model | {' | '.join('R^2' if k == 'r2' else k for k in keys)} | training time |",
             "|---|" + "---:|" * (len(keys) + 1)]
    for row in rows:
        cells = [f"{row[k]:.4f}" if k != "rmse" else f"{row[k]:.2f}" for k in keys]
        lines.append(f"| {row['model']} | {' | '.join(cells)} | {row['seconds']:.1f} s |")
    return "\n".join(lines)


def spread_table(recipe: str, runs: list[list[dict[str, object]]]) -> str:
    """Each model's mean and standard deviation of every score over the splits, and on how many splits it
    did at least as well as the zoo MLP (the first row) by the first score."""
    keys = [k for k in ("accuracy", "rmse", "r2") if k in runs[0][0]]
    better = {"accuracy": max, "rmse": min, "r2": max}
    lines = [f"{recipe}: {len(runs)} splits (seeds 0..{len(runs) - 1}), mean +- standard deviation",
             f"| model | {' | '.join('R^2' if k == 'r2' else k for k in keys)} | splits where it is at least as good as the zoo MLP ({keys[0]}) |",
             "|---|" + "---:|" * (len(keys) + 1)]
    for index, first in enumerate(runs[0]):
        cells = []
        for key in keys:
            values = np.array([rows[index][key] for rows in runs])
            cells.append(f"{values.mean():.4f} +- {values.std(ddof=1) if len(values) > 1 else 0:.4f}" if key != "rmse"
                         else f"{values.mean():.2f} +- {values.std(ddof=1) if len(values) > 1 else 0:.2f}")
        key, best = keys[0], better[keys[0]]
        ties = sum(best(rows[index][key], rows[0][key]) == rows[index][key] for rows in runs)
        lines.append(f"| {first['model']} | {' | '.join(cells)} | {'' if index == 0 else f'{ties} of {len(runs)}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("recipe", "shipped"), default="recipe",
                        help="recipe: train each recipe here (default); shipped: the shipped weights")
    parser.add_argument("--quick", action="store_true", help="2 epochs per recipe: checks that it runs")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--split_seeds", type=int, default=0,
                        help="also run every model on this many other splits of each table (seeds 1..N; the "
                             "recipe's own is 0) and give each model's mean and spread over all of them: one "
                             "split's test rows are few, and a row or two decide a comparison there")
    args = parser.parse_args()
    if args.split_seeds and args.source == "shipped":
        parser.error("--split_seeds trains on other splits: it needs --source recipe (the shipped weights "
                     "were trained on rows that other splits test on)")
    from benchmarks.common import machine
    from zoo.runtime import apply_console_settings

    apply_console_settings()  # what the zoo command shows: no programmer messages
    torch.manual_seed(0)
    print(machine())
    started = time.perf_counter()
    for recipe in args.recipes:
        rows = benchmark(recipe, args.source, args.quick)
        dm = recipe_datamodule(recipe)
        with contextlib.redirect_stdout(io.StringIO()):
            splits = dm.split_frames()
        print()
        print(table(recipe, rows, len(splits["train"]), len(splits["test"])))
        if args.split_seeds:
            runs = [rows] + [benchmark(recipe, args.source, args.quick, seed) for seed in range(1, args.split_seeds + 1)]
            print()
            print(spread_table(recipe, runs))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
