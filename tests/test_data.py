"""DataModules: data-root rule, offline errors, splits, batches, augmentation, CIFAR files."""

import pickle

import numpy as np
import pytest
import torch

import zoo
from zoo.data import CIFAR10DataModule, MNISTDataModule, resolve_data_dir
from zoo.data.base import random_hflip, random_shift
from zoo.data.vision import DatasetNotFoundError, read_cifar_batch

pytestmark = pytest.mark.compat  # the datasets as torchvision reads them


def test_data_root_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert resolve_data_dir().name == "data" and ".cache" in str(resolve_data_dir())


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_name_the_path_and_the_fix(name, tmp_path):
    dm = zoo.create_datamodule(name, data_dir=tmp_path, download=False)
    dm.prepare_data()  # nothing to do without download
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(tmp_path) in message and "ZOO_DATA_DIR" in message and "download=False" in message


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(val_size=-1), "val_size must be >= 0"),
    (dict(shift=-2), "shift must be >= 0"),
    (dict(on_device=True, num_workers=2), "on_device=True needs num_workers=0"),
])
def test_bad_datamodule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_datamodule("digits", **kwargs)


def test_mnist_batches_and_seeded_split(data_dir):
    dm = MNISTDataModule(data_dir=data_dir, batch_size=256, seed=3)
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    again = MNISTDataModule(data_dir=data_dir, seed=3)
    again.setup("fit")
    assert torch.equal(again.datasets["val"].y, dm.datasets["val"].y)
    other = MNISTDataModule(data_dir=data_dir, seed=4)
    other.setup("fit")
    assert not torch.equal(other.datasets["val"].y, dm.datasets["val"].y)
    # validation and training samples never overlap: together they are the 60k training images
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 60000


def test_fashion_mnist_reads_its_own_folder(data_dir):
    dm = zoo.create_datamodule("fashion_mnist", data_dir=data_dir)
    dm.setup("test")
    assert len(dm.datasets["test"]) == 10000 and dm.class_names[9] == "Ankle boot"
    assert torch.bincount(dm.datasets["test"].y).tolist() == [1000] * 10


def test_digits_is_embedded_and_mnist_shaped():
    dm = zoo.create_datamodule("digits")
    dm.setup()
    sizes = [len(dm.datasets[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[2] == 359
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1:] == (1, 28, 28) and x[:, :, :4].abs().sum() == 0  # centred with an empty border
    assert x.mean().item() == pytest.approx(dm.mean[0], abs=0.02)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batched_reads_equal_item_reads(dtype):
    from zoo.data.base import TensorBatchDataset

    torch.manual_seed(0)
    x = torch.randint(0, 256, (50, 1, 5, 4)).to(dtype)
    ds = TensorBatchDataset(x, torch.randn(50, 3))  # y of more than one dimension, as for forecasts
    indices = [3, 1, 4, 1, 49]
    xb, yb = ds.__getitems__(indices)
    assert xb.dtype == torch.float32 and xb.shape == (5, 1, 5, 4) and yb.shape == (5, 3)
    for row, i in enumerate(indices):
        xi, yi = ds[i]
        assert torch.equal(xb[row], xi) and torch.equal(yb[row], yi)
    assert torch.equal(xb[0], x[3].float() / (255 if dtype == torch.uint8 else 1))
    empty_x, empty_y = ds.__getitems__([])
    assert empty_x.shape == (0, 1, 5, 4) and empty_y.shape == (0, 3)
    with pytest.raises(IndexError):
        ds.__getitems__([50])
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[1, 3]] = True
    assert torch.equal(ds[mask][0], xb[[1, 0]])  # other index kinds still work as x[index] does


def test_random_shift_moves_content_without_distortion():
    torch.manual_seed(0)
    x = torch.zeros(64, 2, 12, 12)
    x[:, :, 5, 6] = 1.0  # one bright pixel, far enough from the border to survive any shift
    shifted = random_shift(x, padding=3)
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum((2, 3)), x.sum((2, 3)))
    positions = {tuple(p.tolist()) for p in shifted[:, 0].flatten(1).argmax(1).unsqueeze(1)}
    assert len(positions) > 5  # different samples get different shifts
    assert torch.equal(random_shift(x, padding=0), x)


def test_random_hflip_flips_about_half():
    torch.manual_seed(0)
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(400, 1, 1, 1)
    flipped = random_hflip(x)
    is_flipped = (flipped[:, 0, 0, 0] == 3).float()
    assert 0.4 < is_flipped.mean() < 0.6
    assert torch.equal(flipped[is_flipped.bool()], x.flip(-1)[is_flipped.bool()])


def _write_cifar(root, per_batch=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        entry = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(), "batch_label": name}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    return folder


def test_cifar10_reads_cifar_format_files(tmp_path):
    folder = _write_cifar(tmp_path)
    dm = CIFAR10DataModule(data_dir=tmp_path, val_size=10, batch_size=8, download=False)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [90, 10, 20]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and y.max() < 10
    raw, labels = read_cifar_batch(folder / "test_batch")
    # channel-major rows: the first 1024 values are the red plane
    assert torch.equal(dm.datasets["test"].x[0, 0].flatten(), torch.from_numpy(raw[0, 0].flatten()))
    assert dm.hparams.shift == 4 and dm.hparams.hflip  # the standard CIFAR-10 augmentation
    assert dm.augment(x).shape == x.shape


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_reader_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": _Exploit(), "labels": []}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        read_cifar_batch(path)


def test_cifar_reader_rejects_wrong_layout(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 10), dtype=np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"expected data of shape \(N, 3072\), got \(2, 10\)"):
        read_cifar_batch(path)


def test_function_datamodule_regression_targets():
    dm = zoo.create_datamodule("function", function="sine", num_train=256, val_size=56)
    dm.setup()
    x, y = dm.datasets["test"].x, dm.datasets["test"].y
    assert x.shape == y.shape == (1000, 1)
    assert torch.allclose(y, torch.sin(2 * x))
    with pytest.raises(ValueError, match="function must be one of"):
        zoo.create_datamodule("function", function="cosh")


def test_on_device_moves_every_split_to_the_trainers_device():
    from types import SimpleNamespace

    dm = zoo.create_datamodule("digits", on_device=True)
    # The meta device stands in for a GPU: setup must hand every split to the trainer's device.
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")))
    dm.setup()
    assert {split: (ds.x.device.type, ds.y.device.type) for split, ds in dm.datasets.items()} == {
        "train": ("meta", "meta"), "val": ("meta", "meta"), "test": ("meta", "meta")}


def test_batches_of_data_on_another_device_take_their_indices_there(monkeypatch):
    from zoo.data.base import TensorBatchDataset

    # on_device: the sampler's indices are on the CPU, the data on the training device (meta here).
    # CUDA's index_select wants its index on the data's device; meta does not check, so look.
    devices = []
    index_select = torch.Tensor.index_select

    def recording(self, dim, index):
        devices.append((self.device.type, index.device.type))
        return index_select(self, dim, index)

    monkeypatch.setattr(torch.Tensor, "index_select", recording)
    ds = TensorBatchDataset(torch.zeros(10, 1, 4, 4, dtype=torch.uint8, device="meta"),
                            torch.zeros(10, dtype=torch.int64, device="meta"))
    x, y = ds.__getitems__([7, 2, 9])
    assert devices == [("meta", "meta"), ("meta", "meta")]
    assert (x.device.type, x.dtype, x.shape) == ("meta", torch.float32, (3, 1, 4, 4))
    assert (y.device.type, y.shape) == ("meta", (3,))


def test_on_device_training_on_the_cpu_gives_the_same_batches():
    import lightning as L

    batches = {}
    for on_device in (False, True):
        dm = zoo.create_datamodule("digits", on_device=on_device, seed=3)
        trainer = L.Trainer(accelerator="cpu", logger=False)
        dm.trainer = trainer
        dm.setup("fit")
        batches[on_device] = next(iter(dm.train_dataloader()))
    assert torch.equal(batches[False][0], batches[True][0]) and torch.equal(batches[False][1], batches[True][1])
