"""The shipped recipes: installed with the package, run by name, listed and shown by `zoo recipes`."""

import re

import pytest

from tests.conftest import REPO
from zoo.cli import main
from zoo.recipes import (
    RecipeNotFoundError,
    describe_recipes,
    format_duration,
    list_recipes,
    made_by,
    recipe_path,
    resolve_config,
    shipped_recipes_dir,
)
from zoo.weights import read_manifest

FILES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))


def test_every_recipe_of_the_repository_is_shipped_by_name():
    assert shipped_recipes_dir() == REPO / "recipes"  # a source checkout reads the repository's folder
    assert list_recipes() == FILES
    assert recipe_path("lenet5_mnist") == recipe_path("lenet5_mnist.yaml") == REPO / "recipes/lenet5_mnist.yaml"


def test_config_takes_a_file_or_a_shipped_name(in_tmp):
    (in_tmp / "lenet5_mnist.yaml").write_text("seed_everything: 1\n")
    assert resolve_config("lenet5_mnist.yaml") == "lenet5_mnist.yaml"  # a file of the user's own comes first
    assert resolve_config("lenet5_digits") == str(REPO / "recipes/lenet5_digits.yaml")
    with pytest.raises(RecipeNotFoundError, match=r"no recipe named 'lenet_mnist'\. Did you mean lenet5_mnist\?"):
        resolve_config("lenet_mnist")
    with pytest.raises(RecipeNotFoundError, match="no such file. A shipped recipe has that name: --config vae_mnist"):
        resolve_config("recipes/vae_mnist.yaml")


def test_every_shipped_weight_names_the_recipe_that_made_it_by_name():
    for name, entry in read_manifest().items():
        recipe = made_by(entry, list_recipes())
        assert recipe is not None, (name, entry["recipe"])
        assert entry["recipe"].startswith(f"zoo fit --config {recipe}"), entry["recipe"]
        assert (REPO / f"weights/cards/{name}.md").read_text().count(entry["recipe"]) == 1


def test_recipes_lists_each_with_what_it_trains_its_result_and_time(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    manifest = read_manifest()
    for info in describe_recipes(manifest):
        block = out.split(f"\n  {info.name} ")[1].split("\n\n")[0]
        assert f"trains {info.model} on {info.data}: zoo fit --config {info.name}" in block
        for weights in info.weights:
            entry = manifest[weights]
            assert weights in block
            for key, value in entry["metrics"].items():
                assert f"{key} {value:.4f}" in block
            seconds = entry.get("training", {}).get("fit_seconds")
            if seconds is not None:
                assert f"trained in {format_duration(seconds)}" in block
    assert re.search(r"\n  lenet5_mnist +LeNet-5 on MNIST", out)
    shown = {info.name for info in describe_recipes(manifest) if info.weights}
    assert shown == {made_by(entry, FILES) for entry in manifest.values()}


def test_recipes_show_prints_the_file_to_copy(capsys):
    assert main(["recipes", "show", "lenet5_digits"]) == 0
    assert capsys.readouterr().out == (REPO / "recipes/lenet5_digits.yaml").read_text()


@pytest.mark.parametrize("seconds, text", [(9.3, "9 s"), (812, "13 min 32 s"), (3569, "59 min 29 s"), (7300, "2 h 1 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert format_duration(seconds) == text


def test_registry_names_work_for_model_and_data(in_tmp, capsys):
    from zoo.trainer_cli import resolve_user_arguments

    assert resolve_user_arguments(["fit", "--model", "vgg16_bn", "--data=mnist", "--config", "lenet5_digits"]) == [
        "fit", "--model", "zoo.models.vgg.VGG", "--model.init_args.depth", "16", "--model.init_args.batch_norm", "true",
        "--data", "zoo.data.vision.MNISTDataModule", "--config", str(REPO / "recipes/lenet5_digits.yaml")]
    assert resolve_user_arguments(["fit", "--model", "LeNet5", "--data", "zoo.data.DigitsDataModule"]) == [
        "fit", "--model", "LeNet5", "--data", "zoo.data.DigitsDataModule"]  # class names and paths as they were
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--model", "lenet5", "--data", "digits", "--print_config"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: zoo.models.lenet.LeNet5" in out and "class_path: zoo.data.vision.DigitsDataModule" in out
