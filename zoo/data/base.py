"""In-memory DataModules: the whole dataset as one tensor, batched without per-item Python.

Small datasets (MNIST: 47 MB as uint8) are decoded once into tensors. A batch is gathered with one
``index_select`` (``Dataset.__getitems__``), and augmentation runs per batch on the device the
batch lives on (``on_after_batch_transfer``), so a GPU does it on the GPU.
"""

from __future__ import annotations

import array
import os
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

DATA_DIR_ENV = "ZOO_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/lightning-zoo/data")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the ``data_dir`` argument, else ``$ZOO_DATA_DIR``, else ``~/.cache/lightning-zoo/data``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


class TensorBatchDataset(Dataset):
    """Samples stored as whole tensors; ``x`` may be uint8 (scaled to [0, 1] on read) or float."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def _read(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, torch.Tensor) and index.ndim == 1 and index.dtype == torch.int64:
            # index_select copies whole rows; x[index] copies element by element, several times slower
            # (benchmarks/data_path.py measures it).
            if index.device != self.x.device:  # on_device: the indices come from the CPU sampler
                # From pinned memory the copy is queued; from pageable memory torch would first wait
                # for all the work already queued on the GPU, once per batch.
                index = (index.pin_memory() if self.x.is_cuda else index).to(self.x.device, non_blocking=True)
            x, y = self.x.index_select(0, index), self.y.index_select(0, index)
        else:
            x, y = self.x[index], self.y[index]
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return x, y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._read(index)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # The DataLoader hands the whole batch of indices here: one gather instead of N item reads.
        # Through an int64 array the list becomes a tensor faster than through torch.as_tensor.
        if not indices:
            return self._read(torch.empty(0, dtype=torch.int64))
        return self._read(torch.frombuffer(array.array("q", indices), dtype=torch.int64))


def _whole_batch(batch):
    return batch  # __getitems__ already returns the collated (x, y) pair


class ResumableSampler(DistributedSampler):
    """The training order: a permutation fixed by ``(seed, epoch)``, sharded across DDP ranks.

    Unlike a ``RandomSampler`` it draws nothing from the global RNG, so the order of an epoch is the
    same in an interrupted and an uninterrupted run, and :meth:`resume` can skip the batches a
    checkpoint has already trained on (see :meth:`TensorDataModule.state_dict`). Being a
    ``DistributedSampler``, Lightning leaves it in place under DDP instead of injecting its own.

    ``batches_done`` is the position in the current epoch: set when a pass starts (0, or where a
    resumed epoch stopped) and advanced by the DataModule for every batch the trainer trains on.
    The loader runs ahead of that (it prefetches), so it cannot count them itself.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        world_size, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.batch_size = batch_size
        self.batches_done = 0
        self._resume_epoch, self._resume_batches = -1, 0

    def resume(self, epoch: int, batches_done: int) -> None:
        """Make passes over ``epoch`` start after its first ``batches_done`` batches."""
        # Lightning may create the iterator before it calls set_epoch, so set the epoch here too.
        self.epoch, self._resume_epoch, self._resume_batches = epoch, epoch, batches_done

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._resume_epoch:
            self._resume_epoch = -1  # the resumed epoch is over
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        self.batches_done = self._resume_batches if self.epoch == self._resume_epoch else 0
        return iter(indices[self.batches_done * self.batch_size :])


def random_shift(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-sample random translation by up to ``padding`` pixels (zero fill): pad, then crop back.

    Equivalent to torchvision's ``RandomCrop(size, padding)`` applied to every image independently.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    offset_y = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    offset_x = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    rows = (offset_y + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (offset_x + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch_index = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch_index, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class TensorDataModule(L.LightningDataModule):
    """What the in-memory DataModules share: splits held as :class:`TensorBatchDataset`, batched by one
    gather each, and a training order that a resumed run continues exactly.

    Subclasses fill ``self.datasets`` (``train``, ``val``, ``test``) in ``setup``. The training
    position is saved in every checkpoint (:meth:`state_dict`) and restored by Lightning before the
    training loader is built, so a run resumed mid-epoch skips what it has already trained on.

    Args:
        batch_size: samples per batch (per process under DDP).
        seed: seed of the training order (and of the loader's worker seeds).
        num_workers: DataLoader workers; 0 is fastest for in-memory data.
    """

    # Whether model_settings() says some of the model's arguments (a table's number of features):
    # zoo fit then fills them into the model's settings before it builds the model.
    decides_model_settings: bool = False

    def __init__(self, batch_size: int, seed: int, num_workers: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size, self.seed, self.num_workers = int(batch_size), int(seed), int(num_workers)
        self.datasets: dict[str, TensorBatchDataset] = {}
        self._train_sampler: ResumableSampler | None = None
        self._resume_state: dict[str, int] | None = None

    def model_settings(self) -> dict:
        """The model arguments this data decides (see ``decides_model_settings``): none by default."""
        return {}

    def _dataset(self, split: str) -> TensorBatchDataset:
        if split not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for the {split} loader")
        return self.datasets[split]

    def _loader(self, split: str, sampler: ResumableSampler | None = None) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=_whole_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Worker seeds come from this generator, not the global RNG, so a resumed run draws the
            # same random numbers as an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def state_dict(self) -> dict[str, int]:
        """The training position, saved in every checkpoint so that a resumed run skips what it has seen."""
        if self._train_sampler is None:
            return {}
        return {"epoch": self._train_sampler.epoch, "batches_done": self._train_sampler.batches_done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        # Lightning restores the DataModule before it builds the training loader.
        self._resume_state = dict(state_dict) or None

    def train_dataloader(self) -> DataLoader:
        self._train_sampler = ResumableSampler(self._dataset("train"), self.batch_size, seed=self.seed)
        if self._resume_state is not None:
            self._train_sampler.resume(self._resume_state["epoch"], self._resume_state["batches_done"])
            self._resume_state = None
        return self._loader("train", self._train_sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The training augmentation, applied to a whole batch on its device (none by default)."""
        return x

    @property
    def augmentation(self) -> str | None:
        """What :meth:`augment` does, in words (None: nothing): why a training image differs from epoch to
        epoch. A subclass with its own ``augment`` says here what it does (by default: that it has one)."""
        return None if type(self).augment is TensorDataModule.augment else f"{type(self).__name__}.augment"

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training:
            if self._train_sampler is not None:
                self._train_sampler.batches_done += 1  # one more batch trained on: see state_dict
            x, y = batch
            batch = (self.augment(x), y)
        return batch


class InMemoryDataModule(TensorDataModule):
    """Base of the in-memory image DataModules.

    Subclasses implement :meth:`load_split` returning ``(x, y)`` for the train or test split and
    set ``num_classes``, ``input_shape``, ``mean``, ``std``. The validation set is a seeded random
    subset of the training split.

    Args:
        data_dir: data root; see :func:`resolve_data_dir`.
        batch_size: samples per batch (per process under DDP).
        val_size: samples held out of the training split for validation.
        seed: seed of the train/val split and of the training order (independent of the training seed).
        shift: augmentation, random translation by up to this many pixels (0: off).
        hflip: augmentation, random horizontal flips.
        num_workers: DataLoader workers; 0 is fastest for in-memory data.
        download: fetch missing files in ``prepare_data`` (needs network access).
        on_device: keep the uint8 images on the training device (each process's GPU under DDP), so
            batches are gathered, converted and augmented there and nothing is copied per step.
            Needs ``num_workers=0``. Off by default: on the CPU it changes nothing.
    """

    num_classes: int = 0
    input_shape: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_names: tuple[str, ...] = ()
    # How the images are framed (a key of zoo.data.framing.FRAMINGS), None: not said. A classifier
    # trained on the data records it as input_framing, so reading a user's image files follows it.
    framing: str | None = None

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        shift: int = 0,
        hflip: bool = False,
        num_workers: int = 0,
        download: bool = True,
        on_device: bool = False,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        if shift < 0:
            raise ValueError(f"shift must be >= 0, got {shift}")
        if on_device and num_workers > 0:
            raise ValueError(f"on_device=True needs num_workers=0 (worker processes cannot gather from GPU memory), got {num_workers}")
        # Not sent to the loggers: Lightning logs the model's and the DataModule's hyperparameters as
        # one dict and refuses names that both have with different values (image_size, weights). The
        # run's config.yaml and the checkpoint keep the DataModule's settings.
        self.save_hyperparameters(logger=False)
        self.data_dir = resolve_data_dir(data_dir)

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self.datasets and stage in (None, "fit", "validate"):
            x, y = self.load_split(train=True)
            if self.hparams.val_size >= len(x):
                raise ValueError(f"val_size={self.hparams.val_size} leaves no training data ({len(x)} samples)")
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.hparams.seed))
            val_idx, train_idx = order[: self.hparams.val_size], order[self.hparams.val_size :]
            self.datasets["train"] = TensorBatchDataset(x[train_idx], y[train_idx])
            self.datasets["val"] = TensorBatchDataset(x[val_idx], y[val_idx])
        if "test" not in self.datasets and stage in (None, "test", "predict"):
            self.datasets["test"] = TensorBatchDataset(*self.load_split(train=False))
        if self.hparams.get("on_device") and self.trainer is not None:
            self.move_to(self.trainer.strategy.root_device)

    def move_to(self, device: torch.device | str) -> None:
        """Move the loaded splits' tensors to ``device`` (what ``on_device=True`` does in ``setup``)."""
        for dataset in self.datasets.values():
            dataset.x, dataset.y = dataset.x.to(device), dataset.y.to(device)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The training augmentation, applied to a whole batch (N, C, H, W)."""
        if self.hparams.shift > 0:
            x = random_shift(x, self.hparams.shift)
        if self.hparams.hflip:
            x = random_hflip(x)
        return x

    @property
    def augmentation(self) -> str | None:
        if type(self).augment is not InMemoryDataModule.augment:
            return f"{type(self).__name__}.augment"
        parts = [f"shift {self.hparams.shift}: random shifts of up to {self.hparams.shift} pixels"] if self.hparams.shift else []
        if self.hparams.hflip:
            parts.append("hflip: random horizontal flips")
        return " and ".join(parts) or None
