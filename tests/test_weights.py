"""Pretrained weights: safetensors + sha256, strict loading, manifest, shipped numbers re-measured."""

import json
import pytest
import torch
from safetensors.torch import save_file

import zoo
from tests.fakes import RandomImages, quiet_trainer
from zoo.evaluate import evaluate_pretrained
from zoo.recipes import list_recipes
from zoo.weights import WeightsError, load_pretrained, read_manifest, sha256_of, shipped_weights_dir

pytestmark = pytest.mark.compat  # weights loading and load_from_checkpoint(weights_only=True)

SHIPPED = ["lenet5_mnist", "mlp_mnist"]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("lenet5", mean=[0.1307], std=[0.3081])
    return model, model.save_pretrained(tmp_path / "lenet", metrics={"test/acc": 0.5})


def test_folder_layout_and_config(saved):
    model, folder = saved
    config = json.loads((folder / "config.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # README.md: the model card
    assert config["class_path"] == "zoo.models.lenet.LeNet5"
    assert config["sha256"] == sha256_of(folder / "model.safetensors")
    assert config["metrics"] == {"test/acc": 0.5}
    assert config["hparams"]["mean"] == [0.1307]
    assert zoo.load_pretrained(folder).pretrained_metrics == {"test/acc": 0.5}


def test_modified_file_is_refused_naming_it(saved):
    _, folder = saved
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"model.safetensors has sha256 .* modified or corrupt"):
        load_pretrained(folder)


def test_truncated_file_is_refused(saved):
    _, folder = saved
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    config = json.loads((folder / "config.json").read_text())
    config["sha256"] = sha256_of(weights)  # even with a matching hash, the file must parse
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_pretrained(folder)


def _rewrite_weights(folder, state):
    save_file(state, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["sha256"] = sha256_of(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))


def test_key_mismatch_lists_the_keys(saved):
    model, folder = saved
    state = dict(model.state_dict())
    state["net.extra"] = torch.zeros(1)
    del state["net.head.bias"]
    _rewrite_weights(folder, state)
    with pytest.raises(WeightsError, match=r"missing keys: net.head.bias; unexpected keys: net.extra"):
        load_pretrained(folder)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    _, folder = saved
    other = zoo.create_model("lenet5", num_classes=5)
    _rewrite_weights(folder, other.state_dict())
    with pytest.raises(WeightsError, match=r"shape mismatches: net.head.bias: file \(5,\) vs model \(10,\)"):
        load_pretrained(folder)


def test_config_cannot_name_arbitrary_classes(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["class_path"] = "os.system"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="'os.system' is not a zoo model"):
        load_pretrained(folder)


def test_missing_sha256_and_missing_config_are_refused(saved, tmp_path):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    del config["sha256"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="no sha256 recorded"):
        load_pretrained(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="has no config.json"):
        load_pretrained(tmp_path / "empty")


def test_unknown_name_lists_shipped_weights():
    with pytest.raises(WeightsError, match="no shipped weights named 'resnet' .* shipped weights: .*lenet5_mnist, .*mlp_mnist"):
        load_pretrained("resnet")


def test_from_pretrained_checks_the_class(saved):
    _, folder = saved
    with pytest.raises(TypeError, match="holds a LeNet5, not a MLP"):
        zoo.models.MLP.from_pretrained(folder)


@pytest.mark.parametrize("name", SHIPPED)
def test_manifest_entry_matches_file_and_model(name):
    entry = read_manifest()[name]
    assert sha256_of(shipped_weights_dir() / entry["file"]) == entry["sha256"]
    model = zoo.load_pretrained(name)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert sum(p.numel() for p in model.parameters()) == entry["num_params"]
    assert entry["recipe"].split()[:3] == ["zoo", "fit", "--config"] and entry["recipe"].split()[3] in list_recipes()
    assert entry["datamodule"]["class_path"].startswith("zoo.data.")
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_shipped_names_are_listed():
    assert zoo.list_pretrained() == sorted(read_manifest()) and set(SHIPPED) <= set(zoo.list_pretrained())


@pytest.mark.parametrize("name, floor", [("lenet5_mnist", 0.99), ("mlp_mnist", 0.98)])
def test_shipped_weights_reproduce_their_number_on_the_real_test_split(name, floor, data_dir):
    results = evaluate_pretrained(name, data_dir=str(data_dir), accelerator="cpu")
    acc = results["test/acc"]
    assert acc["measured"] == pytest.approx(acc["recorded"], abs=1e-4)
    assert acc["measured"] >= floor


def test_manifest_entry_whose_file_is_missing(tmp_path, monkeypatch):
    entry = dict(read_manifest()["lenet5_mnist"], file="gone.safetensors")
    (tmp_path / "manifest.json").write_text(json.dumps({"lenet5_mnist": entry}))
    monkeypatch.setattr("zoo.weights.shipped_weights_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match=r"weights file .*gone.safetensors does not exist"):
        load_pretrained("lenet5_mnist")


def test_shipped_classifiers_and_conditional_generators_name_their_classes_as_their_dataset_does():
    manifest = read_manifest()
    with_classes = sorted(name for name, entry in manifest.items() if entry["hparams"].get("num_classes"))
    assert with_classes == ["alexnet_fashionmnist", "cgan_mnist", "cvae_mnist", "lenet5_mnist", "lstm_mnist",
                            "mlp_breast_cancer", "mlp_diabetes", "mlp_mnist", "mlp_wine"]
    for name in with_classes:
        if manifest[name]["hparams"].get("task") == "regression":  # num_classes: its number of targets
            assert load_pretrained(name).class_names is None
            continue
        # the image datasets read no files; a table names its classes once it has read its rows
        settings = manifest[name]["datamodule"]["init_args"] if manifest[name]["dataset"] == "tabular" else {}
        dataset = zoo.create_datamodule(manifest[name]["dataset"], **settings)
        assert load_pretrained(name).class_names == list(dataset.class_names), name
    assert load_pretrained("alexnet_fashionmnist").class_names[9] == "Ankle boot"


def test_unnamed_classes_take_the_datamodules_names_into_checkpoints_and_saved_weights(tmp_path):
    import lightning as L

    from zoo.models import LeNet5

    def fit(model):
        trainer = L.Trainer(accelerator="cpu", fast_dev_run=True, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp_path)
        trainer.fit(model, datamodule=zoo.create_datamodule("digits", batch_size=32))
        return trainer

    digits = [str(d) for d in range(10)]
    model = zoo.create_model("lenet5")
    assert model.class_names is None
    fit(model).save_checkpoint(tmp_path / "model.ckpt")
    assert model.class_names == digits
    assert LeNet5.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True).class_names == digits
    assert load_pretrained(model.save_pretrained(tmp_path / "saved")).class_names == digits
    named = zoo.create_model("lenet5", class_names=list("abcdefghij"))
    fit(named)
    assert named.class_names == list("abcdefghij")  # names given by the user are kept
    with pytest.raises(ValueError, match="class_names must name each of the 10 classes, got 3 names"):
        model.name_classes(["a", "b", "c"])


class NamedImages(RandomImages):
    class_names = tuple("abcdefghij")


@pytest.mark.parametrize("name, hparams, named", [
    ("lenet5", {}, True),
    ("mlp", dict(task="regression", num_classes=1), False),  # a regressor has no classes
    ("vae", dict(latent_size=4, hidden_sizes=[16], num_classes=10), True),  # the classes it draws
    ("vae", dict(latent_size=4, hidden_sizes=[16]), False),  # unconditional
])
def test_every_family_takes_the_datamodules_class_names_the_same_way(tmp_path, name, hparams, named):
    model = zoo.create_model(name, **hparams)
    quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(model, datamodule=NamedImages())
    expected = list("abcdefghij") if named else None
    assert model.class_names == expected and model.hparams.get("class_names") == expected
