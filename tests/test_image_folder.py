"""The image_folder DataModule on small image folders the tests write."""

import pytest
import torch
from PIL import Image

import zoo
from tests.fakes import quiet_trainer
from zoo.data.folder import ImageFolderDataModule, ImageFolderError

pytestmark = pytest.mark.compat  # image files as Pillow and torchvision read them


def _write_folder(root, classes=("cat", "dog"), per_class=5, size=(40, 30)):
    """Solid-colour images, one colour per class (so a model can tell them apart), varied sizes and modes."""
    colours = [(250, 20, 20), (20, 20, 250), (20, 250, 20)]
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            mode = "L" if i % 2 else "RGB"
            image = Image.new("RGB", (size[0] + i, size[1]), colours[label]).convert(mode)
            image.save(root / name / f"{i}.{'png' if i % 3 else 'jpg'}")
    return root


def test_folder_gives_square_uint8_images_and_a_seeded_split(tmp_path):
    root = _write_folder(tmp_path / "train")
    dm = ImageFolderDataModule(str(root), image_size=16, val_fraction=0.2, seed=3, batch_size=4)
    assert dm.class_names == ("cat", "dog") and dm.num_classes == 2 and dm.input_shape == (3, 16, 16)
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert (len(train), len(val)) == (8, 2)
    assert train.x.dtype == torch.uint8 and train.x.shape == (8, 3, 16, 16)
    red = train.x[train.y == 0].float().mean((0, 2, 3))
    assert red[0] - red[2] > 60  # RGB order kept: class 0 is the red one

    again = ImageFolderDataModule(str(root), image_size=16, seed=3)
    again.setup("fit")
    assert torch.equal(again.datasets["val"].x, val.x)
    other = ImageFolderDataModule(str(root), image_size=16, seed=4)
    other.setup("fit")
    assert not torch.equal(other.datasets["val"].x, val.x)


def test_separate_val_and_test_folders_and_grayscale(tmp_path):
    train = _write_folder(tmp_path / "train", per_class=3)
    val = _write_folder(tmp_path / "val", per_class=2)
    test = _write_folder(tmp_path / "test", per_class=1)
    dm = ImageFolderDataModule(str(train), val_root=str(val), test_root=str(test), image_size=12, channels=1)
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [6, 4, 2]
    assert dm.datasets["train"].x.shape[1:] == (1, 12, 12)


def test_image_size_follows_the_weights(tmp_path):
    root = _write_folder(tmp_path / "train")
    assert ImageFolderDataModule(str(root), weights="VGG16_Weights.IMAGENET1K_V1").input_shape == (3, 224, 224)
    with pytest.raises(ValueError, match="weights must name torchvision weights"):
        ImageFolderDataModule(str(root), weights="VGG16_Weights.NOPE")


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "no class sub-folders"),
    (lambda root: _write_folder(root, classes=("only",)), "a single class"),
    (lambda root: (_write_folder(root), (root / "empty").mkdir()), "holds no images"),
    (lambda root: (_write_folder(root), (root / "dog" / "broken.jpg").write_bytes(b"not an image")), "cannot read image"),
])
def test_clear_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(ImageFolderError, match=message):
        dm = ImageFolderDataModule(str(root), image_size=8)
        dm.setup("fit")


def test_missing_folder_and_mismatched_val_classes(tmp_path):
    with pytest.raises(ImageFolderError, match="does not exist"):
        ImageFolderDataModule(str(tmp_path / "nowhere"))
    train = _write_folder(tmp_path / "train")
    val = _write_folder(tmp_path / "val", classes=("cat", "cow"))
    dm = ImageFolderDataModule(str(train), val_root=str(val), image_size=8)
    with pytest.raises(ImageFolderError, match="but the training folder has"):
        dm.setup("fit")


def test_a_model_learns_the_folder(tmp_path):
    root = _write_folder(tmp_path / "train", per_class=8)
    dm = ImageFolderDataModule(str(root), image_size=32, batch_size=4)
    torch.manual_seed(0)
    model = zoo.create_model("alexnet_small", num_classes=dm.num_classes, image_size=32, hidden_size=32, lr=0.001)
    trainer = quiet_trainer(tmp_path, max_epochs=8)
    trainer.fit(model, datamodule=dm)
    assert trainer.validate(model, datamodule=dm, verbose=False)[0]["val/acc"] == 1.0
