"""Image DataModules: MNIST, Fashion-MNIST, CIFAR-10 (torchvision's file layouts) and the bundled digits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from zoo.data.base import DATA_DIR_ENV, InMemoryDataModule
from zoo.errors import DataError


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset's files are not under the data root and could not be downloaded.

    Args:
        message: the whole explanation, for Python users.
        dataset: the dataset's name; root: the data root searched; missing: the files not found there.
    """

    def __init__(self, message: str, dataset: str, root: Path, missing: list[Path]) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.root = root
        self.missing = missing


def _missing_data_error(name: str, root: Path, missing: list[Path], cause: str) -> DatasetNotFoundError:
    listed = "\n  ".join(str(p) for p in missing[:4])
    return DatasetNotFoundError(
        f"{name} not found under data root {root} ({cause}). Missing:\n  {listed}\n"
        f"Fix: set {DATA_DIR_ENV} (or pass data_dir=...) to a folder holding torchvision's layout, "
        f"or run with network access and download=True to fetch it there.",
        dataset=name, root=root, missing=missing,
    )


class _TorchvisionFilesDataModule(InMemoryDataModule):
    """A dataset stored as files in torchvision's layout, downloaded by torchvision if missing."""

    display_name = ""

    def required_files(self) -> list[Path]:
        raise NotImplementedError

    def torchvision_download(self) -> None:
        raise NotImplementedError

    def _missing(self) -> list[Path]:
        return [p for p in self.required_files() if not p.exists()]

    def prepare_data(self) -> None:
        # Runs on one process per node: the only place that may write to the data root.
        if not self._missing() or not self.hparams.download:
            return
        try:
            self.torchvision_download()
        except Exception as err:  # noqa: BLE001 - any download failure gets the same actionable message
            raise _missing_data_error(self.display_name, self.data_dir, self._missing(), f"download failed: {err}") from err

    def check_files(self) -> None:
        missing = self._missing()
        if missing:
            cause = "download=False" if not self.hparams.download else "prepare_data() did not fetch them"
            raise _missing_data_error(self.display_name, self.data_dir, missing, cause)


class MNISTDataModule(_TorchvisionFilesDataModule):
    """MNIST handwritten digits (LeCun et al.): 60k train (55k/5k train/val split) + 10k test, 28x28."""

    display_name = "MNIST"
    folder = "MNIST"
    num_classes = 10
    input_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    class_names = tuple(str(d) for d in range(10))
    framing = "mnist"  # light on black, 20x20 box centred by mass in 28x28 (zoo.data.framing)

    def _files(self, train: bool) -> list[Path]:
        prefix = "train" if train else "t10k"
        raw = self.data_dir / self.folder / "raw"
        return [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]

    def required_files(self) -> list[Path]:
        return self._files(True) + self._files(False)

    def _torchvision_class(self):
        from torchvision import datasets

        return getattr(datasets, self.folder)

    def torchvision_download(self) -> None:
        for train in (True, False):
            self._torchvision_class()(str(self.data_dir), train=train, download=True)

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_files()
        from torchvision.datasets.mnist import read_image_file, read_label_file

        images, labels = self._files(train)
        x = read_image_file(str(images)).unsqueeze(1)  # (N, 1, 28, 28) uint8
        y = read_label_file(str(labels)).long()
        return x, y


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): Zalando clothing images, same format as MNIST."""

    display_name = "Fashion-MNIST"
    folder = "FashionMNIST"
    mean = (0.2860,)
    std = (0.3530,)
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    framing = "fashion_mnist"  # light on black, longer side 28, centred by its box: not MNIST's framing


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles; allow only what rebuilds plain numpy arrays, nothing callable."""

    allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    with open(path, "rb") as f:
        try:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except Exception as err:
            raise ValueError(f"{path} is not a readable CIFAR-10 batch file: {err}") from err
    if not isinstance(entry, dict) or "data" not in entry or not ({"labels", "fine_labels"} & entry.keys()):
        raise ValueError(f"{path} is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'")
    data = np.asarray(entry["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10DataModule(_TorchvisionFilesDataModule):
    """CIFAR-10 (Krizhevsky 2009): 50k train (45k/5k split) + 10k test colour images, 32x32.

    Augmentation defaults to the standard RandomCrop(32, padding=4) + horizontal flip.
    """

    display_name = "CIFAR-10"
    folder = "cifar-10-batches-py"
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def __init__(self, *args, shift: int = 4, hflip: bool = True, **kwargs) -> None:
        super().__init__(*args, shift=shift, hflip=hflip, **kwargs)

    def _files(self, train: bool) -> list[Path]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        return [self.data_dir / self.folder / name for name in names]

    def required_files(self) -> list[Path]:
        return self._files(True) + self._files(False)

    def torchvision_download(self) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(self.data_dir), train=True, download=True)

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_files()
        parts = [read_cifar_batch(p) for p in self._files(train)]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return x, y


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), upscaled to MNIST's 28x28 format.

    Needs no download, which makes it the quickstart dataset. Each 8x8 image (values 0-16) is
    resized to 20x20 and centred in a 28x28 frame, like MNIST digits. A fixed 20% of the images
    (seeded, independent of ``seed``) is the test split.
    """

    num_classes = 10
    input_shape = (1, 28, 28)
    mean = (0.1557,)  # measured on the training split
    std = (0.2772,)
    test_fraction = 0.2
    class_names = tuple(str(d) for d in range(10))

    def __init__(self, *args, val_size: int = 144, **kwargs) -> None:
        super().__init__(*args, val_size=val_size, **kwargs)
        self._splits: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def _load_all() -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)  # (1797, 1, 8, 8) in [0, 1]
        x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
        x = F.pad(x, (4, 4, 4, 4))  # (1797, 1, 28, 28)
        x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
        return x, torch.from_numpy(digits.target).long()

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._splits:
            x, y = self._load_all()
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1998))
            n_test = round(self.test_fraction * len(x))
            self._splits[False] = (x[order[:n_test]], y[order[:n_test]])
            self._splits[True] = (x[order[n_test:]], y[order[n_test:]])
        return self._splits[train]
