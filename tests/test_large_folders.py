"""Image folders over the memory budget: decoded once into a file on disk and read from there by batch,
with the same batches, resume and DDP as in memory."""

import os

import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from tests.shards import check_shards, read_samples, split_fingerprints
from tests.test_cli import run_zoo
from tests.test_resume import _kill_and_resume, run_settings
from zoo.data.decoded import DecodedImages, parse_budget
from zoo.data.folder import ImageFolderDataModule, ImageFolderError

pytestmark = pytest.mark.compat  # image files as Pillow and torchvision read them; checkpoints and resume


def noise_folder(root, per_class=12, classes=("a", "b"), size=(30, 40), seed=0):
    """Random-noise images, so that no two are alike, PNG and JPEG; class b is brighter."""
    generator = torch.Generator().manual_seed(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = torch.randint(0, 160, (*size, 3), generator=generator, dtype=torch.uint8) + 90 * label
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_over_the_budget_the_images_come_from_disk_and_the_batches_are_the_same(tmp_path, monkeypatch):
    root = noise_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    in_memory = ImageFolderDataModule(str(root), image_size=16, batch_size=5, seed=2)
    on_disk = ImageFolderDataModule(str(root), image_size=16, batch_size=5, seed=2, memory_budget="10KB",
                                    cache_dir=str(cache))
    assert not in_memory.on_disk and on_disk.on_disk and on_disk.decoded_bytes == 24 * 3 * 16 * 16
    in_memory.setup("fit")
    on_disk.prepare_data()
    on_disk.setup("fit")
    for split in ("train", "val"):
        memory, disk = in_memory.datasets[split], on_disk.datasets[split]
        assert isinstance(disk.x, DecodedImages) and torch.equal(disk.y, memory.y)
        assert torch.equal(disk.x[torch.arange(len(disk.x))], memory.x)
        assert torch.equal(disk.x[disk.y == 1], memory.x[memory.y == 1]) and torch.equal(disk.x[3], memory.x[3])
    for memory, disk in zip(in_memory.train_dataloader(), on_disk.train_dataloader()):
        assert torch.equal(memory[0], disk[0]) and torch.equal(memory[1], disk[1])
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and all(name.endswith(".u8") for name in files)  # train and val; no partial file

    # The next run finds the decoded files: nothing is decoded again.
    monkeypatch.setattr("zoo.data.folder.read_image", lambda *args, **kwargs: pytest.fail("decoded again"))
    again = ImageFolderDataModule(str(root), image_size=16, batch_size=5, seed=2, memory_budget="10KB", cache_dir=str(cache))
    again.prepare_data()
    again.setup("fit")
    assert torch.equal(again.datasets["val"].x[[0, 1]], in_memory.datasets["val"].x[:2])
    monkeypatch.undo()
    # A changed image is decoded again, into a file of its own.
    image = next((root / "a").glob("*.png"))
    Image.new("RGB", (30, 40), (1, 2, 3)).save(image)
    changed = ImageFolderDataModule(str(root), image_size=16, seed=2, memory_budget="10KB", cache_dir=str(cache))
    changed.prepare_data()
    assert len(list(cache.iterdir())) == 3


def test_frozen_features_are_not_cached_in_memory_for_a_folder_over_the_budget(tmp_path):
    from types import SimpleNamespace

    from zoo.callbacks.frozen import refusal

    root = noise_folder(tmp_path / "images", per_class=3)
    for budget, expected in (("auto", None), ("100", "read from disk")):
        dm = ImageFolderDataModule(str(root), image_size=8, memory_budget=budget, cache_dir=str(tmp_path / "cache"))
        dm.setup("fit")
        reason = refusal(SimpleNamespace(world_size=1), dm)
        assert reason is None if expected is None else expected in reason


def test_an_unreadable_image_is_named_on_disk_too(tmp_path):
    root = noise_folder(tmp_path / "images", per_class=3)
    (root / "b" / "broken.jpg").write_bytes(b"not an image")
    dm = ImageFolderDataModule(str(root), image_size=8, memory_budget="100", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ImageFolderError, match=r"cannot read image .*broken\.jpg: Pillow does not recognise it"):
        dm.prepare_data()
    assert not any((tmp_path / "cache").iterdir())  # no partial file left behind


@pytest.mark.parametrize("budget, expected", [("auto", None), ("512MB", 512 * 10**6), ("4GiB", 4 * 2**30),
                                              ("2g", 2 * 10**9), (1000, 1000), ("64 kb", 64_000)])
def test_memory_budget_sizes(budget, expected):
    assert parse_budget(budget) == (expected or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4)


@pytest.mark.parametrize("budget", ["lots", "-1", "0", "MB", 0])
def test_memory_budget_mistakes(budget):
    with pytest.raises(ValueError, match="memory_budget must be"):
        parse_budget(budget)


# test_resume's run settings (2 epochs, step checkpoints, deterministic, a CSV logger), on a folder.
FOLDER_RECIPE = run_settings("folder") + """model:
  class_path: zoo.models.LeNet5
  init_args: {num_classes: 2, in_channels: 3, image_size: 28, dropout: 0.2, lr: 0.003}
data:
  class_path: zoo.data.ImageFolderDataModule
  init_args: {root: %s, image_size: 28, batch_size: 4, seed: 1, hflip: true, shift: 2, memory_budget: 1KB, cache_dir: %s}
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run_from_disk(tmp_path):
    root = noise_folder(tmp_path / "images", per_class=10)
    straight, _ = _kill_and_resume(FOLDER_RECIPE % (root, tmp_path / "cache"), "folder", tmp_path)
    assert straight["global_step"] == 2 * 4  # 16 training images, batches of 4


@pytest.mark.slow
def test_two_process_ddp_from_disk_sees_disjoint_halves(tmp_path):
    root = noise_folder(tmp_path / "images", per_class=10)
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(FOLDER_RECIPE % (root, tmp_path / "cache"))
    run_zoo("fit", "--config", str(recipe), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--trainer.max_epochs", "1", "--data.shift", "0", "--data.hflip", "false",
            "--trainer.callbacks+=tests.shards.RecordSamples", "--trainer.callbacks.folder", str(tmp_path / "seen"),
            cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    seen = read_samples(tmp_path / "seen")
    assert len(seen[0]) == len(seen[1]) == 8  # 16 training images
    split = ImageFolderDataModule(str(root), image_size=28, seed=1)
    split.setup("fit")
    check_shards(seen, split_fingerprints(split.datasets["train"]), epochs=1)
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2  # decoded once, by the first rank
