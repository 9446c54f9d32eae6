"""CONTRIBUTING.md, followed as written: its example architecture (its own code blocks) is registered,
passes the checks every zoo model passes, trains from the guide's recipe, and is published and loaded."""

import json
import re
import sys

import pytest
import yaml

import tests.test_every_model as every_model
import zoo
import zoo.cli
import zoo.weights
from tests.cases import ModelCase
from tests.conftest import REPO
from tests.fakes import RandomImages
from tests.test_cli import run_zoo

GUIDE = (REPO / "CONTRIBUTING.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.S)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """The guide's net and model as ``my_package.models``, registered the way the guide says."""
    net, model, register = _blocks("python")
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "models.py").write_text(net + "\n\n" + model)
    monkeypatch.syspath_prepend(str(tmp_path))
    exec(register, {})
    yield tmp_path
    zoo.registry.unregister_model("tiny_conv")
    for name in [m for m in sys.modules if m.startswith("my_package")]:
        del sys.modules[name]


def test_the_files_the_guide_names_exist():
    named = set(re.findall(r"`((?:zoo|tests|recipes|weights)/[\w/.<>_-]*)`", GUIDE))
    assert len(named) > 15
    missing = [path for path in sorted(named) if "<" not in path and not (REPO / path).exists()]
    assert not missing, missing


@pytest.mark.parametrize("check", [every_model.test_output_shape_and_finite, every_model.test_gradients_reach_every_parameter,
                                   every_model.test_fast_dev_run_fit_changes_the_weights,
                                   every_model.test_save_pretrained_round_trip_gives_identical_outputs,
                                   every_model.test_lightning_checkpoint_round_trip])
def test_the_example_passes_every_models_checks(package, check, tmp_path):
    case = ModelCase("tiny_conv", dict(mean=[0.1307], std=[0.3081]), make_datamodule=RandomImages, output_shape=(4, 10))
    model = zoo.create_model(case.name, **case.hparams)
    assert "tiny_conv" in zoo.list_models() and type(model).__name__ == "TinyConv"
    assert model.finetuning.num_stages == 2  # its stage_ends give fine-tuning two backbone stages
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in check.__code__.co_varnames else {}
    check(case, model, **kwargs)
    with pytest.raises(ValueError, match="width must be >= 1, got 0"):
        zoo.create_model("tiny_conv", width=0)


def test_the_example_trains_from_the_guides_recipe_and_is_published(package, tmp_path, data_dir, monkeypatch):
    (recipe_text,) = _blocks("yaml")
    recipe = yaml.safe_load(recipe_text)
    assert recipe["model"]["class_path"] == "my_package.models.TinyConv"
    (tmp_path / "tiny_conv_mnist.yaml").write_text(recipe_text)
    (publish,) = [line for block in _blocks("bash") for line in block.splitlines() if "--publish" in line]
    args = publish.split()[1:]  # the guide's command, shortened so that the test stays quick:
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "30", "--trainer.limit_val_batches", "4"]
    args[args.index("--config") + 1] = str(tmp_path / "tiny_conv_mnist.yaml")
    args[args.index("--weights_dir") + 1] = str(tmp_path / "weights")
    env = {"PYTHONPATH": str(package), "ZOO_DATA_DIR": str(data_dir)}
    out = run_zoo(*args, cwd=tmp_path, env=env, timeout=300)
    assert "Published tiny_conv_mnist" in out
    entry = json.loads((tmp_path / "weights" / "manifest.json").read_text())["tiny_conv_mnist"]
    assert entry["sha256"] == zoo.weights.sha256_of(tmp_path / "weights" / entry["file"])
    assert entry["class_path"] == "my_package.models.TinyConv" and entry["dataset"] == "mnist"
    assert entry["recipe"].startswith("zoo fit --config") and entry["metrics"]["test/acc"] > 0.5

    # What the guide says to check next, with these weights where shipped ones live.
    monkeypatch.setattr(zoo.weights, "shipped_weights_dir", lambda: tmp_path / "weights")
    loaded = zoo.load_pretrained("tiny_conv_mnist")
    assert type(loaded).__name__ == "TinyConv" and not loaded.training
    assert zoo.cli.main(["evaluate", "tiny_conv_mnist", "--data_dir", str(data_dir)]) == 0
