"""AlexNet and VGG: torchvision's layout and outputs, weights by name/file, input adaptation, shipped weights."""

import time
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import zoo
from zoo.evaluate import evaluate_pretrained
from zoo.pretrained import IMAGENET_MEAN, IMAGENET_STD
from zoo.weights import WeightsError, read_manifest

VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def _imagenet_normalize(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["alexnet", *VGG_NAMES])
def test_state_dict_layout_equals_torchvision(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        theirs = getattr(torchvision.models, name)()
        ours = zoo.create_model(name, num_classes=1000).net  # the model's defaults are the paper's layout
    assert _shapes(ours) == _shapes(theirs)


def _random_torchvision(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():  # BN statistics away from the (0, 1) defaults, so eval-mode BN is really tested
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn", "vgg19_bn"])  # shallowest, with and without BN, deepest
def test_vgg_from_a_pth_file_equals_torchvision(name, tmp_path):
    theirs = _random_torchvision(name)
    torch.save(theirs.state_dict(), tmp_path / f"{name}.pth")
    ours = zoo.create_model(name, weights=str(tmp_path / f"{name}.pth"), num_classes=1000, image_size=32).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(_imagenet_normalize(x)), rtol=1e-4, atol=1e-5)
    assert ours.hparams.mean == list(IMAGENET_MEAN) and "weights" not in ours.hparams


def test_torchvision_weights_by_name_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    theirs = _random_torchvision("alexnet")
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(theirs.state_dict(), cache / Path(url).name)
    x = torch.rand(2, 3, 64, 64)
    for name in ("IMAGENET1K_V1", "DEFAULT"):
        ours = zoo.create_model("alexnet", weights=name, num_classes=1000, image_size=64).eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(_imagenet_normalize(x)), rtol=1e-4, atol=1e-5)
    # a new head for a 10-class task keeps every other pretrained tensor
    ours = zoo.create_model("alexnet", weights="DEFAULT", num_classes=10, image_size=64)
    assert ours.net.head.out_features == 10
    assert torch.equal(ours.net.classifier[4].weight, theirs.classifier[4].weight)
    assert torch.equal(ours.net.features[0].weight, theirs.features[0].weight)


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_imagenet_weights_without_num_classes_keep_their_head_and_class_names(name, tmp_path, monkeypatch):
    """The default a user gets: torchvision's 1,000-class head and categories, outputs equal to torchvision's."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    theirs = _random_torchvision(name)
    enum = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(theirs.state_dict(), cache / Path(enum.url).name)
    ours = zoo.create_model(name, weights="IMAGENET1K_V1").eval()
    assert ours.net.head.out_features == 1000 and ours.hparams.num_classes == 1000
    assert ours.class_names == enum.meta["categories"] and ours.class_names[0] == "tench"
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(_imagenet_normalize(x)), rtol=1e-4, atol=1e-5)
    # a checkpoint rebuilds the same model: the resolved head and names are hyperparameters, weights are not
    again = type(ours)(**ours.hparams)
    assert again.net.head.out_features == 1000 and again.class_names == ours.class_names
    # another number of classes replaces the head, and the ImageNet names no longer apply
    replaced = zoo.create_model(name, weights="IMAGENET1K_V1", num_classes=5)
    assert replaced.net.head.out_features == 5 and replaced.class_names is None
    named = zoo.create_model(name, weights="IMAGENET1K_V1", num_classes=2, class_names=["cat", "dog"])
    assert named.class_names == ["cat", "dog"]


def test_class_names_must_match_the_head():
    with pytest.raises(ValueError, match="class_names must name each of the 10 classes, got 2 names"):
        zoo.create_model("alexnet_small", in_channels=1, image_size=28, class_names=["a", "b"])


def test_missing_torchvision_weights_fail_fast_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache, and no network here
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        zoo.create_model("alexnet", weights="IMAGENET1K_V1")
    assert time.monotonic() - start < 60
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message and "connect" in message and "weights='path/to/file.pth'" in message


def test_unknown_weights_name_lists_the_options():
    with pytest.raises(WeightsError, match="not a file, a save_pretrained folder, shipped zoo weights"):
        zoo.create_model("vgg11", weights="IMAGENET_V7")


def test_safetensors_file_of_the_wrong_shape_is_refused(tmp_path):
    tiny = dict(width_divisor=16, hidden_size=32, pooled_size=1, image_size=32)
    source = zoo.create_model("vgg11", **tiny)
    save_file({k.removeprefix("net."): v for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    loaded = zoo.create_model("vgg11", weights=str(tmp_path / "w.safetensors"), **tiny)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in source.state_dict().items())
    with pytest.raises(WeightsError, match="shape mismatches"):
        zoo.create_model("vgg11", weights=str(tmp_path / "w.safetensors"), **{**tiny, "width_divisor": 8})


def test_grayscale_small_images_are_adapted_to_the_weights():
    model = zoo.create_model("vgg11", in_channels=1, image_size=28, width_divisor=16, hidden_size=32, pooled_size=1)
    assert model.resize_to == 32  # VGG's minimum input size
    assert model.input_shape == (1, 28, 28)
    x = torch.rand(2, 1, 28, 28)
    adapted = model.adapt(x)
    assert adapted.shape == (2, 3, 32, 32)
    assert torch.equal(adapted[:, 0], adapted[:, 2])
    assert model(x).shape == (2, 10)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\)"):
        model(torch.rand(2, 3, 28, 28))
    alexnet = zoo.create_model("alexnet", in_channels=1, image_size=28, hidden_size=16)
    assert alexnet.resize_to == 63 and alexnet(x).shape == (2, 10)


def test_zoo_weights_start_a_new_task():
    shipped = zoo.load_pretrained("lenet5_mnist")
    model = zoo.create_model("transfer", source="lenet5_mnist", num_classes=3, finetune="feature_extractor")
    assert model.net.head.out_features == 3
    assert torch.equal(model.net.features[0].weight, shipped.net.features[0].weight)
    assert model.hparams.mean == shipped.hparams.mean
    with pytest.raises(WeightsError, match="no shipped weights named"):
        zoo.create_model("transfer", source="no_such_weights")
    with pytest.raises(ValueError, match="VAE does not start from pretrained weights"):
        zoo.create_model("vae", weights="vae_mnist")


@pytest.mark.parametrize("bad, message", [
    (dict(depth=12), "depth must be one of"),
    (dict(in_channels=2), "in_channels must be 1 or 3"),
    (dict(finetune="top9"), "k must be between 1 and the 5"),
    (dict(finetune="half"), "finetune must be"),
    (dict(backbone_lr_scale=0), "backbone_lr_scale must be > 0"),
    (dict(mean=[0.5], std=[0.2]), "mean/std need 3 values"),
])
def test_vgg_arguments_are_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_model("vgg11", **{"width_divisor": 16, "hidden_size": 8, "pooled_size": 1, **bad})


def test_shipped_alexnet_fashionmnist_matches_its_manifest(data_dir):
    entry = read_manifest()["alexnet_fashionmnist"]
    assert entry["hparams"]["small"] is True
    results = evaluate_pretrained("alexnet_fashionmnist", data_dir=str(data_dir), accelerator="cpu")
    assert results["test/acc"]["recorded"] >= 0.92
    assert abs(results["test/acc"]["measured"] - results["test/acc"]["recorded"]) <= 0.002
