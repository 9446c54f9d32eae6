"""`zoo tune` on the quickstart recipe, and the classic experiments of docs/experiments.md: each run as a
user runs it, its claim checked on the numbers it measured, its figure a real PNG."""

import contextlib
import io
import json
import logging
import re

import pytest
import torch
import yaml
from PIL import Image

import zoo
from zoo.errors import UsageError

from tests.commands import zoo_command

# The commands README.md and docs/experiments.md show; the tests below run them as written.
TUNE_COMMAND = "zoo tune --config lenet5_digits --save_recipe tuned.yaml"
EXPERIMENT_COMMANDS = {name: f"zoo experiment {name}" for name in ("optimizers", "overfitting", "batchnorm", "init", "width")}
DOCUMENTED_EXPERIMENTS = tuple(EXPERIMENT_COMMANDS)  # docs/experiments.md shows each, with the numbers of a run


@contextlib.contextmanager
def _lightning_log():
    """What Lightning logs while the block runs, as the zoo command's terminal shows it (its filters applied)."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).addHandler(handler)
    try:
        yield lines
    finally:
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).removeHandler(handler)


def _check_png(path, min_width=400, min_height=250):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height, image.size


def _run_experiment(name, folder, env):
    result = zoo_command(*EXPERIMENT_COMMANDS[name].split()[1:], cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = folder / f"experiment_{name}"
    assert result.stdout.strip() == f"figure written to {output.name}/{name}.png; its numbers: {output.name}/{name}.json"
    _check_png(output / f"{name}.png")
    return json.loads((output / f"{name}.json").read_text())


def test_tune_suggests_a_rate_draws_it_and_saves_a_recipe_with_it(in_tmp):
    with _lightning_log() as log:
        result = zoo_command(*TUNE_COMMAND.split()[1:], cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    line = re.fullmatch(r"suggested learning rate: (\S+) \(plot: (\S+); recipe with it: tuned\.yaml\)",
                        result.stdout.strip())
    assert line, result.stdout
    suggestion, picture = float(line.group(1)), line.group(2)
    assert 1e-6 < suggestion < 1.0  # inside the searched range
    assert picture == "runs/lenet5_digits/tune/lr_find.png"
    _check_png(in_tmp / picture)
    saved = yaml.safe_load((in_tmp / "tuned.yaml").read_text())
    assert saved["model"]["init_args"]["lr"] == suggestion
    printed = zoo_command("fit", "--config", "tuned.yaml", "--print_config", cwd=in_tmp)
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["model"]["init_args"]["lr"] == suggestion
    # nothing but the run folder and the recipe asked for; the finder's checkpoint is gone
    assert sorted(p.name for p in in_tmp.iterdir()) == ["runs", "tuned.yaml"]
    assert sorted(p.name for p in (in_tmp / "runs/lenet5_digits/tune").iterdir()) == ["lr_find.png"]
    # the finder's own lines (its checkpoint restored, its fit stopped) stay off the user's terminal
    assert log.getvalue().startswith("Seed set to 42"), log.getvalue()  # what the user is told is caught here
    for programmer_line in ("Restor", "`Trainer.fit` stopped", ".lr_find_"):
        assert programmer_line not in log.getvalue() + result.stderr, log.getvalue() + result.stderr


def test_tune_explains_a_search_too_short_for_a_suggestion(in_tmp):
    with _lightning_log() as log:
        result = zoo_command("tune", "--config", "lenet5_digits", "--num_training", "5", "--output", "lr",
                             "--trainer.enable_progress_bar", "false", cwd=in_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("zoo tune: no suggestion from 5 batches")
    assert len(result.stdout.strip().splitlines()) == 1
    _check_png(in_tmp / "lr/lr_find.png")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["lr"]
    assert sorted(p.name for p in (in_tmp / "lr").iterdir()) == ["lr_find.png"]
    # no progress bar when it is switched off (the finder draws its own), and Lightning's complaint about
    # too few points is said once, in the zoo's words on stdout
    assert "Finding best initial lr" not in result.stderr, result.stderr
    assert log.getvalue().strip() == "Seed set to 42", log.getvalue()


def test_tune_help_names_zoo_tune_and_its_own_options(in_tmp):
    result = zoo_command("tune", "--help", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: zoo tune "), result.stdout[:200]
    assert "--save_recipe" in result.stdout and "--num_training" in result.stdout


def test_momentum_and_adam_train_further_than_plain_sgd(in_tmp, data_dir):
    numbers = _run_experiment("optimizers", in_tmp, {"ZOO_DATA_DIR": str(data_dir)})
    sgd = numbers["SGD"]["final_train_loss"]
    for better in ("SGD + momentum", "Adam", "RMSprop"):
        assert numbers[better]["final_train_loss"] < 0.6 * sgd, numbers
    # each variant is an ordinary run folder: zoo compare sets their curves side by side
    runs = sorted((in_tmp / "experiment_optimizers/runs").glob("*/version_0"))
    assert [run.parent.name for run in runs] == ["adam", "rmsprop", "sgd", "sgd_momentum"]
    compared = zoo_command("compare", *map(str, runs), "--output", "optimizers.html", cwd=in_tmp)
    assert compared.returncode == 0, compared.stderr
    page = (in_tmp / "optimizers.html").read_text()
    assert "<td>model.init_args.optimizer</td><td>adam</td><td>rmsprop</td><td>sgd</td><td>sgd_momentum</td>" in page
    assert page.count("data:image/png;base64,") == 1  # the curves, overlaid


@pytest.mark.slow
def test_dropout_and_l2_shrink_the_gap_and_early_stopping_stops_early(in_tmp, data_dir):
    numbers = _run_experiment("overfitting", in_tmp, {"ZOO_DATA_DIR": str(data_dir)})
    plain = numbers["no regularisation"]
    assert plain["epochs"] == 20
    assert plain["train_loss"] < 0.05 and plain["gap"] > 0.3, plain  # the curves part without a cure
    for cure in ("dropout 0.5", "L2 (weight decay 0.01)"):
        assert numbers[cure]["gap"] < plain["gap"] - 0.05, numbers
        assert numbers[cure]["val_loss"] < plain["val_loss"], numbers
    assert numbers["early stopping"]["epochs"] < 20, numbers


@pytest.mark.slow
def test_batch_norm_trains_where_the_plain_net_does_not(in_tmp, data_dir):
    numbers = _run_experiment("batchnorm", in_tmp, {"ZOO_DATA_DIR": str(data_dir)})
    assert numbers["with batch norm"]["val_acc"] > numbers["without batch norm"]["val_acc"] + 0.1, numbers


def test_init_small_fades_xavier_keeps_tanh_kaiming_keeps_relu(in_tmp, data_dir):
    numbers = _run_experiment("init", in_tmp, {"ZOO_DATA_DIR": str(data_dir)})
    for activation in ("tanh", "relu"):
        small = numbers[f"{activation} small"]["std_per_layer"]
        assert all(later < earlier for earlier, later in zip(small, small[1:])), small
        assert small[-1] < 0.01 * small[0], small
    for kept in ("tanh xavier", "relu kaiming"):
        spread = numbers[kept]["std_per_layer"]
        assert 0.5 < spread[-1] / spread[0] < 2, (kept, spread)


@pytest.mark.slow
def test_a_wider_hidden_layer_approximates_the_function_better(in_tmp):
    numbers = _run_experiment("width", in_tmp, {})
    errors = [numbers[f"{w} units"]["val_mse"] for w in (4, 16, 64, 1024)]
    assert all(wider < narrower for narrower, wider in zip(errors, errors[1:])), errors


# The two MLP additions the initialisation experiment stands on. The model case tables (tests/cases_*.py)
# hold one case per registered model, not one per option, so they are checked here.
def test_init_small_draws_weights_of_spread_0_01_and_zero_biases():
    torch.manual_seed(0)
    model = zoo.create_model("mlp", hidden_sizes=[256, 128], init="small")
    linears = [layer for layer in model.net.modules() if isinstance(layer, torch.nn.Linear)]
    assert len(linears) == 3  # two hidden layers and the head
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.05)
        assert not layer.bias.any()


def test_hidden_activations_gives_each_hidden_layer_and_other_models_refuse():
    model = zoo.create_model("mlp", hidden_sizes=[32, 16, 8], activation="tanh", batch_norm=True, dropout=0.5).eval()
    x = torch.rand(5, 1, 28, 28)
    layers = model.hidden_activations(x)
    assert [tuple(h.shape) for h in layers] == [(5, 32), (5, 16), (5, 8)]
    assert all(h.abs().max() <= 1 for h in layers)  # tanh's outputs, after its batch norm
    # the last one is what the head reads
    assert torch.allclose(model.net.head(layers[-1]), model(x), atol=1e-6)
    with pytest.raises(UsageError, match="LeNet5 does not list its hidden layers' activations"):
        zoo.create_model("lenet5").hidden_activations(x)
