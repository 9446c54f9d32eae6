"""A user's own images: one sub-folder per class (torchvision's ``ImageFolder`` layout).

::

    root/
      cat/  001.jpg  002.png ...
      dog/  a.jpg ...

Images are decoded once (Pillow), resized and centre-cropped to ``image_size`` and kept in memory
as uint8, like the other in-memory DataModules; the model normalises them itself. A folder whose
decoded images would exceed the memory budget is decoded once into a file on disk instead, and read
from there batch by batch (:mod:`zoo.data.decoded`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from zoo.data.base import InMemoryDataModule, TensorBatchDataset
from zoo.data.decoded import DEFAULT_CACHE_DIR, DecodedImages, decode_to_file, folder_key, human_bytes, parse_budget
from zoo.data.framing import Framing, frame_image
from zoo.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageFolderError(DataError):
    """The image folder cannot be used; the message names the folder or file and the fix."""


def scan_folder(root: Path, class_names: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """Class names (sorted sub-folder names) and ``(file, label)`` pairs of an image folder.

    Args:
        root: the folder with one sub-folder per class.
        class_names: the classes expected (a validation folder must have the training classes).
    """
    if not root.is_dir():
        raise ImageFolderError(f"image folder {root} does not exist or is not a folder")
    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not found:
        raise ImageFolderError(f"{root} has no class sub-folders; expected {root}/<class name>/<image files>")
    if class_names is None:
        if len(found) < 2:
            raise ImageFolderError(f"{root} has a single class ({found[0]!r}); a classifier needs at least 2 class folders")
        class_names = found
    elif found != class_names:
        raise ImageFolderError(f"{root} has classes {list(found)}, but the training folder has {list(class_names)}")
    samples = []
    for label, name in enumerate(class_names):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ImageFolderError(f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        samples += [(f, label) for f in files]
    return class_names, samples


def read_image(path, channels: int, image_size: int, framing: Framing | None = None, name: str | None = None
               ) -> torch.Tensor:
    """Decode ``path`` to a (channels, image_size, image_size) uint8 tensor.

    Args:
        path: an image file Pillow reads, or a binary file object holding one.
        channels: 1 (grayscale) or 3 (RGB).
        image_size: side of the square result.
        framing: None: the shorter side is resized to ``image_size``, then centre-cropped. A framing
            (:mod:`zoo.data.framing`): the image is brought into that dataset's format (polarity,
            bounding box, centring) in grayscale, then resized to ``image_size`` if its field differs.
        name: what error messages call the image (default: ``path``).

    An image of more pixels than Pillow's limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million) is
    refused from its header, before it is decoded: such a file is more likely a decompression bomb
    than a photo. Raise the limit in Python to read larger ones.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import functional as TF

    name = path if name is None else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 or framing is not None else "RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageFolderError(f"{name} is too large to read: {err} The limit is Pillow's "
                               "PIL.Image.MAX_IMAGE_PIXELS; scale the image down or raise the limit.") from None
    except UnidentifiedImageError as err:
        raise ImageFolderError(f"cannot read image {name}: Pillow does not recognise it as an image file. "
                               "Remove or replace the file.") from err
    except OSError as err:
        raise ImageFolderError(f"cannot read image {name}: {err}. Remove or replace the file.") from err
    if framing is None:
        image = TF.center_crop(TF.resize(image, image_size, antialias=True), [image_size, image_size])
        return TF.pil_to_tensor(image)  # (C, S, S) uint8
    try:
        framed = frame_image(TF.pil_to_tensor(image)[0], framing)[None]  # (1, field, field) uint8
    except ValueError as err:
        raise ImageFolderError(f"cannot frame image {name} as {framing.title}: {err}") from err
    if framing.field != image_size:
        framed = TF.resize(framed, [image_size, image_size], antialias=True)
    return framed.expand(channels, -1, -1).contiguous()  # (C, S, S) uint8


class ImageFolderDataModule(InMemoryDataModule):
    """Images in class sub-folders, with a seeded train/val split or a separate validation folder.

    Args:
        root: training images, one sub-folder per class.
        val_root: validation images in the same layout; None: a seeded ``val_fraction`` of ``root``.
        test_root: test images in the same layout; None: the test split is the validation split.
        image_size: side of the square images handed to the model (shorter side resized, then
            centre-cropped). None: ``weights``' crop size, else 224.
        channels: 1 (grayscale) or 3 (RGB).
        val_fraction: share of ``root`` held out for validation when there is no ``val_root``.
        weights: torchvision weights the model starts from, e.g. ``"VGG16_Weights.IMAGENET1K_V1"``;
            sets ``image_size`` to their crop size (the model applies their normalisation itself).
        batch_size: samples per batch (per process under DDP).
        seed: seed of the train/val split.
        shift: augmentation, random translation by up to this many pixels (0: off).
        hflip: augmentation, random horizontal flips.
        num_workers: DataLoader workers; 0 is fastest for in-memory data.
        memory_budget: the most memory the decoded images may take (``"auto"``: a quarter of the
            machine's RAM; or a size such as ``"2GB"``). A folder over it is decoded once into a file
            in ``cache_dir`` and read from there by batch, so the process holds a batch of images.
        cache_dir: where folders over the budget are decoded to (default: ``~/.cache/lightning-zoo/decoded``);
            a later run of the same files reads them from there without decoding.
    """

    mean = (0.485, 0.456, 0.406)  # ImageNet's: the usual statistics for photographs
    std = (0.229, 0.224, 0.225)

    def __init__(
        self,
        root: str,
        val_root: str | None = None,
        test_root: str | None = None,
        image_size: int | None = None,
        channels: int = 3,
        val_fraction: float = 0.2,
        weights: str | None = None,
        batch_size: int = 32,
        seed: int = 0,
        shift: int = 0,
        hflip: bool = False,
        num_workers: int = 0,
        memory_budget: str = "auto",
        cache_dir: str | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if image_size is None:
            image_size = _crop_size(weights) if weights else 224
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.memory_budget = parse_budget(memory_budget)
        super().__init__(data_dir=root, batch_size=batch_size, val_size=0, seed=seed, shift=shift, hflip=hflip,
                         num_workers=num_workers, download=False)
        self.roots = {split: Path(p).expanduser() for split, p in (("train", root), ("val", val_root), ("test", test_root)) if p}
        # Scanning is cheap and gives num_classes before any image is decoded.
        self.class_names, self._train_files = scan_folder(self.roots["train"])
        self.num_classes = len(self.class_names)
        self.input_shape = (channels, image_size, image_size)
        if channels == 1:
            self.mean, self.std = (0.449,), (0.226,)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser()
        self._samples: dict[str, list[tuple[Path, int]]] = {}

    def samples(self) -> dict[str, list[tuple[Path, int]]]:
        """The ``(file, label)`` pairs of each split: ``train``, ``val`` and, with a ``test_root``, ``test``."""
        if not self._samples:
            self._samples["train"], self._samples["val"] = self._split_train()
            if "test" in self.roots:
                self._samples["test"] = scan_folder(self.roots["test"], self.class_names)[1]
        return self._samples

    @property
    def decoded_bytes(self) -> int:
        """What the decoded images of every split take as uint8."""
        return sum(map(len, self.samples().values())) * math.prod(self.input_shape)

    @property
    def on_disk(self) -> bool:
        """Whether the decoded images exceed the memory budget, and so are read from a file on disk."""
        return self.decoded_bytes > self.memory_budget

    def _decoded_file(self, samples: list[tuple[Path, int]]) -> Path:
        files = [path for path, _ in samples]
        return self.cache_dir / f"{folder_key(files, (len(files), *self.input_shape), 'center-crop')}.u8"

    def prepare_data(self) -> None:
        # One process a machine decodes (Lightning calls prepare_data on each node's local rank 0).
        if not self.on_disk:
            return
        from lightning.pytorch.utilities import rank_zero_info

        missing = {split: samples for split, samples in self.samples().items() if not self._decoded_file(samples).is_file()}
        if missing:
            count = sum(map(len, self.samples().values()))
            rank_zero_info(f"image folder: {count:,} images decode to {human_bytes(self.decoded_bytes)}, over the memory "
                           f"budget of {human_bytes(self.memory_budget)} (--data.memory_budget): decoding them once into "
                           f"{self.cache_dir}, then reading them from there batch by batch")
        for split, samples in missing.items():
            self._decode(samples, progress=True)

    def _decode(self, samples: list[tuple[Path, int]], progress: bool = False) -> Path:
        import sys

        channels, size, _ = self.input_shape
        return decode_to_file(self._decoded_file(samples), samples, functools.partial(_decode_sample, channels=channels,
                              size=size), (len(samples), *self.input_shape), progress=progress and sys.stderr.isatty())

    def _read(self, samples: list[tuple[Path, int]]) -> TensorBatchDataset:
        y = torch.tensor([label for _, label in samples], dtype=torch.long)
        if self.on_disk:
            path = self._decoded_file(samples)
            if not path.is_file():  # used without a Trainer, which calls prepare_data first
                self._decode(samples)
            return TensorBatchDataset(DecodedImages(path, (len(samples), *self.input_shape)), y)
        channels, size, _ = self.input_shape
        x = torch.stack([read_image(path, channels, size) for path, _ in samples])  # (N, C, S, S) uint8
        return TensorBatchDataset(x, y)

    def _split_train(self) -> tuple[list, list]:
        if "val" in self.roots:
            return self._train_files, scan_folder(self.roots["val"], self.class_names)[1]
        n = len(self._train_files)
        n_val = round(self.hparams.val_fraction * n)
        if n_val == 0 or n_val == n:
            raise ImageFolderError(f"{self.roots['train']} has {n} images: too few to hold out val_fraction="
                                   f"{self.hparams.val_fraction}; add images or pass val_root")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.hparams.seed)).tolist()
        return [self._train_files[i] for i in order[n_val:]], [self._train_files[i] for i in order[:n_val]]

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self.datasets:
            samples = self.samples()
            self.datasets["train"], self.datasets["val"] = self._read(samples["train"]), self._read(samples["val"])
        if "test" not in self.datasets and stage in (None, "test", "predict"):
            self.datasets["test"] = self._read(self.samples()["test"]) if "test" in self.roots else self.datasets["val"]


def _decode_sample(sample: tuple[Path, int], channels: int, size: int) -> torch.Tensor:
    return read_image(sample[0], channels, size)


def _crop_size(weights: str) -> int:
    from torchvision.models import get_weight

    try:
        entry = get_weight(weights)
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"weights must name torchvision weights such as 'VGG16_Weights.IMAGENET1K_V1', got {weights!r}") from err
    return int(entry.transforms().crop_size[0])
