"""Everyday mistakes at the `zoo` command, and the short answer each must get.

Every row is what a user types and what the answer must say. Each answer: exit status 2, no traceback,
no usage dump, at most four lines on stderr (what was wrong, the valid choices or a near miss, where
help is). The rows run in-process through zoo.cli.main; a few run through the console script too.
"""

import re
import subprocess
import sys

import lightning.pytorch  # noqa: F401 - its log handlers then write to the session's stream, not to one test's capsys
import pytest

from zoo.cli import main

pytestmark = pytest.mark.compat  # jsonargparse's and argparse's errors, as the CLI shortens them

MISSING = "/nonexistent/zoo-data"  # a data root with nothing in it
DIGITS = ["--config", "lenet5_digits"]

MISTAKES = [
    # the training subcommands: names
    (["fit", "--model", "lenett5", "--data", "digits"], r"--model lenett5: unknown model\. Did you mean lenet5\?.*vgg16"),
    (["fit", "--model", "lenet5", "--data", "mnst"], r"--data mnst: unknown data\. Did you mean mnist\?"),
    (["validate", "--model", "vgg17", "--data", "mnist"], r"unknown model\. Did you mean vgg1\d\?"),
    (["predict", *DIGITS, "--data", "cifar11"], r"unknown data\. Did you mean cifar10\?"),
    (["fit", "--model", "transfer", "--data", "mnist"], r"--model lenet5 --weights lenet5_mnist"),
    (["fit", "--model", "lenet5", "--data", "image_folder", "--data.root", ".", "--data.memory_budget", "lots"],
     r"memory_budget must be 'auto', a number of bytes or a size such as '512MB' or '4GB', got 'lots'"),
    (["fit", "--config", "lenet5_mnsit"], r"no recipe named 'lenet5_mnsit'\. Did you mean lenet5_mnist\?"),
    (["fit", "--config", "recipes/lenet5_digits.yaml"], r"no such file\. A shipped recipe has that name: --config lenet5_digits"),
    (["test", "--config", "my/recipe.yaml"], r"--config my/recipe\.yaml: no such file"),
    (["fitt", *DIGITS], r"unknown command 'fitt'\. Did you mean fit\?"),
    (["fit"], r"--data, --model must be given: name a recipe \(--config NAME"),
    (["--versoin"], r"unknown command '--versoin'"),
    # the training subcommands: options and values
    (["fit", *DIGITS, "--patiencee", "3"], r"unknown option --patiencee\. Did you mean --patience\?"),
    (["fit", *DIGITS, "--trainer.max_epochz", "3"], r"unknown option --trainer\.max_epochz\. Did you mean --trainer\.max_epochs\?"),
    (["fit", *DIGITS, "--model.init_args.lrr", "0.1"], r"--model\.init_args\.lrr: LeNet5 has no setting 'lrr'\. Did you mean lr\?"),
    (["fit", *DIGITS, "--trainer.max_epochs", "many"], r"--trainer\.max_epochs many: expected an integer"),
    (["fit", *DIGITS, "--model.init_args.lr", "-1"], r"--model\.init_args\.lr: lr must be > 0, got -1"),
    (["fit", *DIGITS, "--data.init_args.batch_size", "0"], r"--data\.init_args\.batch_size: batch_size must be >= 1, got 0"),
    (["fit", "--model", "lenet5", "--data", "mnist", "--model.init_args.scheduler", "cosin"], r"--model\.init_args\.scheduler: scheduler must be one of"),
    (["fit", *DIGITS, "--trainer.max_epochs", "-1"], r"--trainer\.max_epochs -1 trains without end, but the model's 'cosine'"),
    (["fit", *DIGITS, "--trainer.max_epochs", "-5"], r"--trainer\.max_epochs -5: give a number >= 1"),
    (["fit", *DIGITS, "--trainer.max_epochs", "0"], r"--trainer\.max_epochs 0 trains nothing, and test_after_fit"),
    (["fit", *DIGITS, "--cache_features", "maybe"], r"--cache_features: expected true or false"),
    (["fit", *DIGITS, "--test_checkpoint", "lats"], r"--test_checkpoint lats: choose one of best, last\. Did you mean last\?"),
    (["fit", *DIGITS, "--test_checkpint", "last"], r"unknown option --test_checkpint\. Did you mean --test_checkpoint\?"),
    (["fit", *DIGITS, "--logger", "tensorbord"], r"--logger tensorbord: unknown logger\. Did you mean tensorboard\?.*csv, tensorboard, wandb"),
    (["fit", *DIGITS, "--logger", "csv", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger"],
     r"--logger csv and --trainer\.logger both choose the logger: give one of them"),
    (["test", *DIGITS, "--ckpt_path", "missing.ckpt"], r"--ckpt_path missing\.ckpt: no such checkpoint file"),
    (["fit", "--model", "lenet5", "--data", "mnist", "--trainer.max_epochs", "2", "--data.init_args.data_dir", MISSING],
     r"MNIST is not under the data root .*\n.*--data\.init_args\.data_dir DIR, or set ZOO_DATA_DIR"),
    # tune
    (["tune", "--config", "lenet5_digts"], r"no recipe named 'lenet5_digts'\. Did you mean lenet5_digits\?"),
    (["tune", *DIGITS, "--save_recipee", "t.yaml"], r"unknown option --save_recipee\. Did you mean --save_recipe\?"),
    (["tune", *DIGITS, "--save_recipe", "tuned.txt"], r"--save_recipe tuned\.txt: name a \.yaml file"),
    (["tune", *DIGITS, "--min_lr", "0.1", "--max_lr", "0.01"], r"give 0 < min_lr < max_lr"),
    (["tune", *DIGITS, "--num_training", "1"], r"--num_training 1: give 2 or more batches"),
    (["tune", *DIGITS, "--ckpt_path", "last"], r"zoo tune starts from the recipe's model: drop --ckpt_path"),
    (["tune", "--config", "gan_mnist"], r"GAN has no single learning rate 'lr' to tune \(its rates: lr_discriminator, lr_generator\)"),
    # a table of the user's own (the files: _write_tables)
    (["fit", "--config", "mlp_diabetes", "--data.path", "empty.csv", "--data.target", "price"],
     r"empty\.csv is empty: a table needs a header row and at least one row"),
    (["fit", "--config", "mlp_diabetes", "--data.path", "table.csv", "--data.target", "prise"],
     r"table\.csv has no column 'prise'\. Did you mean price\? Its columns: area, district, price"),
    (["fit", "--config", "mlp_diabetes", "--data.path", "text.csv", "--data.target", "price"],
     r"text\.csv, line 4: column 'area' holds 'big', not a number, among 29 numbers"),
    (["fit", "--config", "mlp_diabetes", "--data.path", "no_such.csv", "--data.target", "price"], r"no_such\.csv: no such file"),
    (["fit", "--config", "mlp_diabetes", "--data.path", "table.csv"], r"name the column to predict with target"),
    (["fit", "--config", "mlp_wine", "--data.task", "clasification"],
     r"--data TabularDataModule: task must be one of auto, classification, regression"),
    (["fit", "--model", "lenet5", "--data", "tabular", "--data.table", "iris"],
     r"--model LeNet5 has a fixed input shape, but TabularDataModule's rows are 4 features each: .*--model mlp"),
    (["infer", "mlp_wine", "table.csv"], r"table\.csv lacks the columns 'alcohol', 'malic_acid'.*It needs: alcohol"),
    (["infer", "mlp_wine", "wine_text.csv"], r"wine_text\.csv, line 3: column 'ash' holds 'n/a!', not a number"),
    (["infer", "mlp_wine", "empty.csv"], r"empty\.csv is empty"),
    (["infer", "mlp_wine", "no_such.csv"], r"no_such\.csv: no such file"),
    (["infer", "mlp_wine", "table.csv", "text.csv"], r"mlp_wine was trained on a table: name one \.csv or \.parquet file"),
    # experiment
    (["experiment", "optimisers"], r"invalid choice: 'optimisers'.* Did you mean optimizers\?"),
    (["experiment"], r"the following arguments are required: name"),
    (["experiment", "optimizers", "--data_dir", "x"], r"unrecognized arguments: --data_dir x"),
    # list and recipes
    (["list", "lenet5"], r"unrecognized arguments: lenet5"),
    (["recipes", "show", "lenet5_mnst"], r"no recipe named 'lenet5_mnst'\. Did you mean lenet5_mnist\?"),
    (["recipes", "show"], r"name the recipe to show"),
    (["recipes", "lenet5_mnist"], r"`zoo recipes show lenet5_mnist` prints one"),
    # evaluate
    (["evaluate", "lenet5_mnsit"], r"no shipped weights named 'lenet5_mnsit'.*Did you mean lenet5_mnist\?.*mlp_mnist"),
    (["evaluate"], r"the following arguments are required: weights"),
    (["evaluate", "lenet5_mnist", "--tolerance", "tiny"], r"argument --tolerance: invalid float value: 'tiny'"),
    (["evaluate", "lenet5_mnist", "--data_dir", MISSING],
     r"MNIST is not under the data root /nonexistent/zoo-data .*\n.*--data_dir DIR, or set ZOO_DATA_DIR"),
    (["evaluate", "lenet5_mnist", "--report", "r", "--config", "lenet5_mnst"], r"Did you mean lenet5_mnist\?"),
    (["evaluate", "notes.txt"], r"notes\.txt is a file or folder of your own.*--report DIR"),
    # infer
    (["infer", "lenet5_mnsit", "notes.txt"], r"no shipped weights named 'lenet5_mnsit'.*Did you mean lenet5_mnist\?"),
    (["infer", "lenet5_mnist", "no_such.png"], r"no_such\.png: no such file or folder"),
    (["infer", "lenet5_mnist", "notes.txt"], r"cannot read image notes\.txt"),
    (["infer", "gan_mnist", "notes.txt"], r"zoo sample gan_mnist N --output DIR"),
    (["infer", "lenet5_mnist"], r"the following arguments are required: images"),
    (["infer", "lenet5_mnist", "notes.txt", "--top_k", "x"], r"argument --top_k: invalid int value: 'x'"),
    (["infer", "lenet5_mnist", "notes.txt", "--preprocess", "mnits"], r"preprocess must be one of auto, plain, mnist"),
    # sample
    (["sample", "vae_mnist", "0", "--output", "s"], r"N must be >= 1, got 0"),
    (["sample", "vae_mnist", "-3", "--output", "s"], r"N must be >= 1, got -3"),
    (["sample", "vae_mnist", "many", "--output", "s"], r"argument n: invalid int value: 'many'"),
    (["sample", "vae_mnist", "4"], r"the following arguments are required: --output"),
    (["sample", "vae_mnsit", "4", "--output", "s"], r"Did you mean vae_mnist\?"),
    (["sample", "vae_mnist", "4", "--output", "s", "--label", "7"], r"vae_mnist is unconditional"),
    (["sample", "cgan_mnist", "4", "--output", "s", "--label", "eleven"], r"label 'eleven' is not a class of GAN"),
    (["sample", "cgan_mnist", "4", "--output", "s", "--label", "12"], r"label 12 is not a class of GAN: use an int in \[0, 9\]"),
    # export
    (["export", "lenet5_mnist", "--format", "onx"], r"invalid choice: 'onx'.* Did you mean onnx\?"),
    (["export", "lenet5_mnist", "--part", "decodr"], r"invalid choice: 'decodr'.* Did you mean decoder\?"),
    (["export", "lenet5_mnist", "--part", "decoder"], r"LeNet5 has no decoder to export"),
    (["export", "lenet5_mnsit"], r"Did you mean lenet5_mnist\?"),
    # report and compare: run folders
    (["report"], r"the following arguments are required: RUN_DIR"),
    (["report", "no_such_run"], r"no_such_run: no such folder; a run folder is where one `zoo fit` wrote"),
    (["report", "."], r"\. is not a run folder: a run folder is where one `zoo fit` wrote its config\.yaml and metrics\.csv, "
                      r"runs/<recipe>/version_N"),
    (["report", "notes.txt"], r"notes\.txt is a file, not a run folder"),
    (["compare", "."], r"give at least two run folders to compare"),
    (["compare", ".", "no_such_run"], r"\. is not a run folder"),
    # serve
    (["serve", "lenet5_mnsit"], r"no shipped weights named 'lenet5_mnsit'.*Did you mean lenet5_mnist\?"),
    (["serve"], r"the following arguments are required: weights"),
    (["serve", "lenet5_mnist", "--port", "0"], r"argument --port: must be at least 1, got 0"),
    (["serve", "lenet5_mnist", "--port", "80000"], r"argument --port: must be at most 65535, got 80000"),
    (["serve", "lenet5_mnist", "--port", "http"], r"argument --port: 'http' is not a whole number"),
    (["serve", "lenet5_mnist", "--max_batch_size", "0"], r"argument --max_batch_size: must be at least 1, got 0"),
    (["serve", "lenet5_mnist", "--batch_timeout", "-1"], r"argument --batch_timeout: must be at least 0.0, got -1"),
    (["serve", "lenet5_mnist", "--accelerator", "gpu"], r"invalid choice: 'gpu'.*cuda"),
    (["serve", "missing.ckpt"], r"missing\.ckpt: no such checkpoint file"),
    (["serve", "notes.txt"], r"no shipped weights named 'notes\.txt'"),
]


def _check_answer(status, stderr: str, expected: str) -> None:
    assert status == 2, (status, stderr)
    assert "Traceback" not in stderr and "usage:" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 4, stderr
    assert re.search(expected, stderr), stderr


def test_the_table_covers_every_subcommand():
    assert len(BY_CONSOLE_SCRIPT) == 4
    commands = {argv[0] for argv, _ in MISTAKES}
    assert {"fit", "validate", "test", "predict", "tune", "experiment", "list", "recipes", "evaluate", "infer", "sample",
            "export", "report", "compare", "serve"} <= commands
    assert len(MISTAKES) >= 25


def _write_tables(folder) -> None:
    """The tables the rows above name: an empty file, a good table, one with a word among the numbers of a
    column, and rows of the wine table with a word in a numeric column."""
    (folder / "empty.csv").write_text("")
    rows = [f"{20 + i},{'north' if i % 2 else 'south'},{100 + 3 * i}" for i in range(30)]
    (folder / "table.csv").write_text("area,district,price\n" + "\n".join(rows) + "\n")
    rows[2] = rows[2].replace("22,", "big,", 1)
    (folder / "text.csv").write_text("area,district,price\n" + "\n".join(rows) + "\n")
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame.drop(columns="target").head(3).astype(object)
    wine.loc[1, "ash"] = "n/a!"
    wine.to_csv(folder / "wine_text.csv", index=False)


@pytest.mark.parametrize("argv, expected", MISTAKES, ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_a_mistake_gets_a_short_answer(argv, expected, in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)  # no data but where the row points
    (in_tmp / "notes.txt").write_text("not an image\n")
    _write_tables(in_tmp)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's errors exit
        status = exit_.code
    captured = capsys.readouterr()
    _check_answer(status, captured.err, expected)
    assert not (in_tmp / "runs").exists()  # nothing ran


# A console script's own process: Lightning's log lines and warnings reach its stderr as they reach a user's.
BY_CONSOLE_SCRIPT = [row for row in MISTAKES if row[0] in (
    ["fit", "--model", "lenett5", "--data", "digits"], ["fit", *DIGITS, "--model.init_args.lr", "-1"],
    ["fit", "--model", "lenet5", "--data", "mnist", "--trainer.max_epochs", "2", "--data.init_args.data_dir", MISSING],
    ["evaluate", "lenet5_mnsit"])]


@pytest.mark.parametrize("argv, expected", BY_CONSOLE_SCRIPT, ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_the_console_script_gives_the_same_short_answers(argv, expected, tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo.cli", *argv], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    _check_answer(result.returncode, result.stderr, expected)
