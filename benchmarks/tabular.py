"""The zoo's MLP on tables against scikit-learn, on the shipped table recipes' own splits.

    python -m benchmarks.tabular                    # train each recipe (mlp_wine, mlp_breast_cancer, mlp_diabetes) here
    python -m benchmarks.tabular --source shipped   # the shipped weights instead of new runs
    python -m benchmarks.tabular --quick            # 2 epochs: checks that it runs, measures nothing
    python -m benchmarks.tabular --split_seeds 9    # also 9 other splits of each table: each model's mean and spread
    python -m benchmarks.tabular --choose_checkpoint 5  # which epoch to keep, by 5-fold cross-validation on training rows
    python -m benchmarks.tabular --choose_settings 5    # the MLP's size and weight decay, the same way

For each table, the recipe's TabularDataModule splits the rows (its seed) and fits the preprocessing
on the training rows; every model sees those same features: the zoo MLP (trained by ``zoo fit
--config <recipe>``, the weights it publishes: those of the last epoch), and scikit-learn's
linear model (LogisticRegression / Ridge), MLP (MLPClassifier / MLPRegressor) and gradient boosting
(HistGradientBoostingClassifier / Regressor) with their default settings, fitted on the training rows
(scikit-learn's MLP and boosting hold out their own validation share only where they early-stop; by
default they do not). All are scored on the test rows: accuracy for classification, RMSE and R^2 in
the target's own units for regression.

``--choose_checkpoint K`` asks which epoch of a recipe's run to keep, without looking at its test rows:
the recipe's training and validation rows are cut into K folds; each fold in turn is held out, the
recipe trains on the other rows (its share of them validating), with every epoch's weights kept, and
the held-out rows score the epoch each rule picks from the validation curves: the first best
validation accuracy (what a classifier's best checkpoint is), the first lowest validation loss, and
the last epoch. ``--choose_settings K`` scores the last epoch of each of a few settings of the MLP
(:data:`SETTINGS`: hidden units, weight decay, dropout) on the same folds, beside the linear model
fitted on each fold's training rows.
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


def recipe_setting(recipe: str, key: str) -> object:
    """A top-level setting of a shipped recipe (None where it leaves the default)."""
    import yaml

    from zoo.recipes import recipe_path

    return yaml.safe_load(recipe_path(recipe).read_text()).get(key)


def recipe_datamodule(recipe: str, split_seed: int | None = None):
    """The TabularDataModule of a shipped recipe, as ``zoo fit --config <recipe>`` builds it (with another
    seed of its split, where ``split_seed`` is given)."""
    from zoo.data import TabularDataModule

    settings = recipe_setting(recipe, "data")["init_args"]
    if split_seed is not None:
        settings["seed"] = split_seed
    return TabularDataModule(**settings)


def zoo_mlp(recipe: str, source: str, quick: bool, split_seed: int | None = None) -> tuple[object, float]:
    """The zoo MLP of ``recipe``: trained here by the recipe (the checkpoint its ``test_checkpoint`` names, as
    it publishes it), or the shipped weights; and the seconds its training took (0 for shipped weights)."""
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
        kept = sorted(Path(folder).rglob("last.ckpt" if recipe_setting(recipe, "test_checkpoint") == "last" else "best-*.ckpt"))
        return model_from_checkpoint(kept[-1]).eval(), seconds


CHECKPOINT_RULES = ("best val/acc", "best val/loss", "last epoch")
SETTINGS = {  # --choose_settings: what each setting passes to zoo fit --config <recipe>
    f"{hidden} hidden, weight decay {decay}{f', dropout {dropout}' if dropout else ''}": [
        "--model.init_args.hidden_sizes", f"[{hidden}]", "--model.init_args.weight_decay", str(decay),
        "--model.init_args.dropout", str(dropout)]
    for hidden, decay, dropout in ((64, 0.3, 0.0), (64, 1.0, 0.0), (64, 3.0, 0.0), (64, 0.3, 0.3), (16, 0.3, 0.0),
                                   (16, 1.0, 0.0), (16, 3.0, 0.0))
}


def chosen_epochs(curves: dict[str, dict[int, float]], task: str) -> dict[str, int]:
    """The epoch each rule keeps, from a run's validation curves (epoch -> value): the first epoch with the
    highest ``val/acc`` (classification only; ModelCheckpoint keeps the first of a tie), the first with the
    lowest ``val/loss``, and the last."""
    loss = curves["val/loss"]
    epochs = {}
    if task == "classification":
        acc = curves["val/acc"]
        epochs["best val/acc"] = min(e for e, value in acc.items() if value == max(acc.values()))
    epochs["best val/loss"] = min(e for e, value in loss.items() if value == min(loss.values()))
    epochs["last epoch"] = max(loss)
    return epochs


def inner_folds(recipe: str, folds: int) -> list[object]:
    """The recipe's training and validation rows (never its test rows), once per fold, with a ``split``
    column: the fold's rows ``test``, and of the others the recipe's share of validation rows ``val``."""
    import pandas as pd

    dm = recipe_datamodule(recipe)
    with contextlib.redirect_stdout(io.StringIO()):
        splits = dm.split_frames()
    frame = pd.concat([splits["train"], splits["val"]]).reset_index(drop=True)
    val_share = dm.hparams.val_size / (1 - dm.hparams.test_size)
    order = np.random.default_rng(0).permutation(len(frame))
    cut = []
    for held_out in np.array_split(order, folds):
        rest = order[~np.isin(order, held_out)]
        labels = np.full(len(frame), "train", dtype=object)
        labels[held_out] = "test"
        labels[rest[:round(val_share * len(rest))]] = "val"
        cut.append(frame.assign(split=labels))
    return cut


def held_out_scores(recipe: str, frame, quick: bool, settings: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """Train ``recipe`` (with ``settings``, more ``zoo fit`` arguments) on ``frame``'s train rows (its
    ``split`` column), keeping every epoch's weights, and score the epoch each rule of
    :func:`chosen_epochs` picks on the ``test`` rows: rule -> scores; and under ``linear`` the linear
    model of :func:`sklearn_models`, fitted on the same training rows."""
    from zoo.checkpointing import model_from_checkpoint
    from zoo.cli import main
    from zoo.data import TabularDataModule
    from zoo.runs import read_metrics

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        frame.to_csv(folder / "rows.csv", index=False)
        args = ["fit", "--config", recipe, "--data.init_args.table", "null", "--data.init_args.path",
                str(folder / "rows.csv"), "--data.init_args.target", "target", "--data.init_args.split_column", "split",
                "--trainer.default_root_dir", str(folder / "runs"), "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--test_after_fit", "false",
                "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor=null",
                "--trainer.callbacks.save_top_k=-1", "--trainer.callbacks.filename=every-{epoch:03d}", *settings]
        if quick:
            args += ["--trainer.max_epochs", "2"]
        with contextlib.redirect_stdout(io.StringIO()), mock.patch.object(sys, "argv", sys.argv[:1]):
            status = main(args)
        if status != 0:
            raise SystemExit(f"zoo fit --config {recipe} on a fold failed (status {status})")
        run = next((folder / "runs").rglob("metrics.csv")).parent
        curves, _ = read_metrics(run / "metrics.csv")
        dm = TabularDataModule(path=str(folder / "rows.csv"), target="target", split_column="split")
        with contextlib.redirect_stdout(io.StringIO()):
            dm.setup("fit")
            dm.setup("test")
        pre = dm.prepare_table()
        task = pre["target"]["task"]
        x, y = dm.datasets["test"].x, dm.datasets["test"].y.numpy()
        if task == "regression":
            mean, std = np.asarray(pre["target"]["mean"]), np.asarray(pre["target"]["std"])
            y = (y * std + mean)[:, 0]
        results = {}
        for rule, epoch in chosen_epochs(curves, task).items():
            model = model_from_checkpoint(run / "checkpoints" / f"every-epoch={epoch:03d}.ckpt").eval()
            with torch.no_grad():
                output = model(x)
            predicted = output.argmax(1).numpy() if task == "classification" else (output.numpy() * std + mean)[:, 0]
            results[rule] = {**scores(task, predicted, y), "epoch": epoch}
        linear = next(iter(sklearn_models(task).values()))
        y_train = dm.datasets["train"].y.numpy()
        linear.fit(dm.datasets["train"].x.numpy(), y_train if task == "classification" else y_train[:, 0])
        predicted = linear.predict(x.numpy())
        results["linear"] = scores(task, predicted if task == "classification" else predicted * std[0] + mean[0], y)
        return results


def rules_table(recipe: str, folds: list[dict[str, dict[str, float]]]) -> str:
    """Each rule's held-out score over the folds (mean and standard deviation), the epochs it kept, and
    on how many folds it scored at least as well as each other rule."""
    rules = [rule for rule in folds[0] if rule != "linear"]  # the linear model: --choose_settings says how it did
    key = "accuracy" if "accuracy" in folds[0][rules[0]] else "rmse"
    better = max if key == "accuracy" else min
    lines = [f"{recipe}: {len(folds)} folds of its training and validation rows, each held out in turn (test rows unused)",
             f"| epoch kept | held-out {key}, mean +- sd | epochs kept | "
             + " | ".join(f"folds at least as good as {other}" for other in rules) + " |",
             "|---|---:|---|" + "---:|" * len(rules)]
    for rule in rules:
        values = np.array([fold[rule][key] for fold in folds])
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        mean = f"{values.mean():.4f} +- {spread:.4f}" if key == "accuracy" else f"{values.mean():.2f} +- {spread:.2f}"
        wins = ["" if other == rule else
                f"{sum(better(fold[rule][key], fold[other][key]) == fold[rule][key] for fold in folds)} of {len(folds)}"
                for other in rules]
        lines.append(f"| {rule} | {mean} | {', '.join(str(fold[rule]['epoch']) for fold in folds)} | {' | '.join(wins)} |")
    return "\n".join(lines)


def settings_table(recipe: str, folds: dict[str, list[dict[str, dict[str, float]]]]) -> str:
    """Each setting's held-out score of the last epoch over the folds (mean and standard deviation), and on
    how many folds it scored at least as well as the linear model fitted on the same rows (the last row)."""
    first = next(iter(folds.values()))
    key = "accuracy" if "accuracy" in first[0]["linear"] else "rmse"
    better = max if key == "accuracy" else min
    lines = [f"{recipe}: {len(first)} folds of its training and validation rows, each held out in turn (test rows unused)",
             f"| settings (the last epoch) | held-out {key}, mean +- sd | folds at least as good as the linear model |",
             "|---|---:|---:|"]

    def cell(values):
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():.4f} +- {spread:.4f}" if key == "accuracy" else f"{values.mean():.2f} +- {spread:.2f}"

    for name, runs in folds.items():
        wins = sum(better(run["last epoch"][key], run["linear"][key]) == run["last epoch"][key] for run in runs)
        lines.append(f"| {name} | {cell(np.array([run['last epoch'][key] for run in runs]))} | {wins} of {len(runs)} |")
    lines.append(f"| the linear model | {cell(np.array([run['linear'][key] for run in first]))} | |")
    return "\n".join(lines)


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
    parser.add_argument("--choose_checkpoint", type=int, default=0, metavar="K",
                        help="instead of the comparison: which epoch of a recipe's run to keep, by K-fold "
                             "cross-validation on its training and validation rows (its test rows unused)")
    parser.add_argument("--choose_settings", type=int, default=0, metavar="K",
                        help="instead of the comparison: the MLP's hidden units, weight decay and dropout, by K-fold "
                             "cross-validation on its training and validation rows (its test rows unused)")
    args = parser.parse_args()
    for option in ("choose_checkpoint", "choose_settings"):
        if getattr(args, option) == 1 or getattr(args, option) < 0:
            parser.error(f"--{option} takes 2 folds or more, got {getattr(args, option)}")
    if args.choose_checkpoint and args.choose_settings:
        parser.error("--choose_checkpoint and --choose_settings: give one of them")
    if args.split_seeds and args.source == "shipped":
        parser.error("--split_seeds trains on other splits: it needs --source recipe (the shipped weights "
                     "were trained on rows that other splits test on)")
    from benchmarks.common import machine
    from zoo.runtime import apply_console_settings

    apply_console_settings()  # what the zoo command shows: no programmer messages
    torch.manual_seed(0)
    print(machine())
    started = time.perf_counter()
    for recipe in args.recipes if args.choose_checkpoint else ():
        folds = [held_out_scores(recipe, frame, args.quick) for frame in inner_folds(recipe, args.choose_checkpoint)]
        print()
        print(rules_table(recipe, folds))
    for recipe in args.recipes if args.choose_settings else ():
        cut = inner_folds(recipe, args.choose_settings)
        runs = {name: [held_out_scores(recipe, frame, args.quick, tuple(extra)) for frame in cut]
                for name, extra in SETTINGS.items()}
        print()
        print(settings_table(recipe, runs))
    for recipe in () if args.choose_checkpoint or args.choose_settings else args.recipes:
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
