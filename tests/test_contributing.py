"""CONTRIBUTING.md, followed as written: its example architectures (its own code blocks), a classifier and a
generative model, are registered, pass the checks every zoo model passes and train from the guide's recipes;
the classifier is published and loaded, the generative model samples, exports its decoder and gets a card."""

import json
import os
import re
import sys

import pytest
import torch
import yaml

import tests.test_every_model as every_model
import zoo
import zoo.cli
import zoo.errors
import zoo.export
import zoo.weights
from tests.cases import ModelCase
from tests.cases_autoencoders import case as case_of_autoencoders
from tests.conftest import REPO
from tests.fakes import RandomImages
from tests.test_cli import run_zoo

GUIDE = (REPO / "CONTRIBUTING.md").read_text()
CLASSIFIER, GENERATIVE = "Adding an architecture", "Adding a generative model"


def _blocks(language: str, section: str | None = None) -> list[str]:
    """The guide's code blocks in ``language``, of one ``## section`` (None: the whole guide)."""
    text = GUIDE if section is None else GUIDE.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _install(section: str, name: str, tmp_path, monkeypatch):
    """The net and model of the guide's ``section`` as ``my_package.models``, registered as it says."""
    net, model, register = _blocks("python", section)
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "models.py").write_text(net + "\n\n" + model)
    monkeypatch.syspath_prepend(str(tmp_path))
    exec(register, {})
    yield tmp_path
    zoo.registry.unregister_model(name)
    for module in [m for m in sys.modules if m.startswith("my_package")]:
        del sys.modules[module]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """The guide's classifier as ``my_package.models.TinyConv``."""
    yield from _install(CLASSIFIER, "tiny_conv", tmp_path, monkeypatch)


@pytest.fixture
def generative_package(tmp_path, monkeypatch):
    """The guide's generative model as ``my_package.models.TinyVAE``."""
    yield from _install(GENERATIVE, "tiny_vae", tmp_path, monkeypatch)


def test_the_files_the_guide_names_exist():
    named = set(re.findall(r"`((?:zoo|tests|recipes|weights)/[\w/.<>_-]*)`", GUIDE))
    assert len(named) > 15
    missing = [path for path in sorted(named) if "<" not in path and not (REPO / path).exists()]
    assert not missing, missing


def test_the_file_map_names_every_module():
    """A newcomer finds every file of the package in the guide's table, not only the ones it started with."""
    table = GUIDE[GUIDE.index("## Where things are"):GUIDE.index("## Running the tests")]
    named = set(re.findall(r"`(zoo/[\w/]+\.py)`", table))
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "zoo").rglob("*.py")}
    assert len(modules) > 50
    assert not modules - named, f"modules the file map of CONTRIBUTING.md does not name: {sorted(modules - named)}"


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
    (recipe_text,) = _blocks("yaml", CLASSIFIER)
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


EVERY_MODEL_CHECK = [every_model.test_output_shape_and_finite, every_model.test_gradients_reach_every_parameter,
                     every_model.test_fast_dev_run_fit_changes_the_weights,
                     every_model.test_save_pretrained_round_trip_gives_identical_outputs,
                     every_model.test_lightning_checkpoint_round_trip]


@pytest.mark.parametrize("check", EVERY_MODEL_CHECK)
def test_the_generative_example_passes_every_models_checks(generative_package, check, tmp_path):
    # the case the guide's step 5 names, in the autoencoders' form (its checks score the training loss)
    case = case_of_autoencoders("tiny_vae", dict(latent_size=4, width=16))
    model = zoo.create_model(case.name, **case.hparams)
    assert "tiny_vae" in zoo.list_models() and type(model).__name__ == "TinyVAE"
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in check.__code__.co_varnames else {}
    check(case, model, **kwargs)
    with pytest.raises(ValueError, match="latent_size must be >= 1, got 0"):
        zoo.create_model("tiny_vae", latent_size=0)


def test_the_generative_example_answers_what_the_tools_ask(generative_package, tmp_path):
    model = zoo.create_model("tiny_vae", latent_size=4, width=16).eval()
    assert (model.takes, model.gives, model.can_sample, model.condition_classes) == ("images", "images", True, None)
    assert model.export_parts == ("model", "decoder")
    images = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert images.shape == (6, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, model.sample(6, generator=torch.Generator().manual_seed(3)))  # seeded
    with pytest.raises(zoo.errors.UsageError, match="TinyVAE is unconditional"):
        model.sample(2, labels=3)

    # Saved and loaded, it draws the same images; its card offers samples; its decoder exports.
    folder = model.save_pretrained(tmp_path / "tiny_vae_mnist")
    loaded = zoo.load_pretrained(str(folder))
    assert torch.equal(loaded.sample(6, generator=torch.Generator().manual_seed(3)), images)
    assert "model.sample(16)" in (folder / "README.md").read_text()
    result = zoo.export.export_weights(str(folder), format="torch.export", output=tmp_path / "decoder.pt2",
                                       part="decoder")
    assert "float32 noise (N, 4) drawn from N(0, I)" in result.metadata["input"]
    decoder = torch.export.load(result.path).module()
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(decoder(z), images, atol=1e-5)  # sample() is the decoder of z ~ N(0, I)

    # zoo sample and zoo serve ask the same questions, so they take it with no change of theirs.
    from zoo.infer import sample_files
    from zoo.serve import served_kind

    written = sample_files(str(folder), 3, tmp_path / "samples", seed=3)
    assert [p.name for p in written] == ["sample_0000.png", "sample_0001.png", "sample_0002.png"]
    assert served_kind(loaded) == "sample"


def test_the_generative_example_trains_from_the_guides_recipe(generative_package, tmp_path, data_dir):
    (recipe_text,) = _blocks("yaml", GENERATIVE)
    recipe = yaml.safe_load(recipe_text)
    assert recipe["model"]["class_path"] == "my_package.models.TinyVAE"
    (tmp_path / "tiny_vae_mnist.yaml").write_text(recipe_text)
    path = os.pathsep.join(p for p in (str(generative_package), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path, "ZOO_DATA_DIR": str(data_dir)}
    # the guide's run, shortened so that the test stays quick
    out = run_zoo("fit", "--config", str(tmp_path / "tiny_vae_mnist.yaml"), "--trainer.max_epochs", "1",
                  "--trainer.limit_train_batches", "20", "--trainer.limit_val_batches", "4",
                  "--trainer.limit_test_batches", "4", "--test_after_fit", "true", cwd=tmp_path, env=env, timeout=300)
    assert "test/psnr" in out
