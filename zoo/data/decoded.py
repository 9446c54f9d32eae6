"""Images decoded once into a file on disk and read back batch by batch: image folders larger than memory.

An in-memory DataModule holds every decoded image as uint8 (150 KB an image at 224 px: 15 GB for
100,000 images). When a folder's decoded images would exceed the memory budget, the image folder
decodes them once into one flat file of uint8 rows, ``(N, C, H, W)`` in the order of its file list,
and every batch reads its rows from there with ``os.preadv``: the process holds a batch, and the
kernel's page cache (memory it gives back when asked) keeps the file's hot parts. The next run of the
same folder finds the file by a key of the files' names, sizes and modification times and decodes
nothing.

:class:`DecodedImages` stands where a uint8 tensor of the images stands in
:class:`~zoo.data.base.TensorBatchDataset`: the batching, the resumable training order, DDP sharding
and the exact resume of the in-memory path are the same code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

DEFAULT_CACHE_DIR = Path("~/.cache/lightning-zoo/decoded")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?", re.IGNORECASE)
_UNITS = {"b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def physical_memory() -> int:
    """Bytes of RAM of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_budget(budget: str | int | float) -> int:
    """A memory budget in bytes: a number of bytes, a size such as ``"512MB"``, ``"4GiB"``, ``"2g"``, or
    ``"auto"`` (a quarter of this machine's RAM)."""
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        if budget <= 0:
            raise ValueError(f"memory_budget must be positive, got {budget}")
        return int(budget)
    text = str(budget).strip()
    if text.lower() == "auto":
        return physical_memory() // 4
    match = _SIZE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"memory_budget must be 'auto', a number of bytes or a size such as '512MB' or '4GB', "
                         f"got {budget!r}")
    unit = (match.group(2) or "b").lower()
    return int(float(match.group(1)) * _UNITS[unit if unit == "b" else unit.removesuffix("b")])


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def folder_key(files: Sequence[Path], shape: tuple[int, ...], how: str = "") -> str:
    """What names a decoded file: the images' paths, sizes and modification times, their decoded shape
    and ``how`` they were decoded. A file changed, added or removed gives another key."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(shape), how]).encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"\0{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


class DecodedImages:
    """``(N, C, H, W)`` uint8 images in a flat file, read row by row: what a :class:`TensorBatchDataset`
    needs of its ``x`` (``len``, ``shape``, ``dtype``, ``device``, ``index_select`` and indexing)."""

    dtype = torch.uint8
    device = torch.device("cpu")
    is_cuda = False

    def __init__(self, path: Path, shape: Sequence[int]) -> None:
        self.path, self.shape = Path(path), torch.Size(shape)
        self.row_bytes = math.prod(self.shape[1:])
        expected = self.row_bytes * self.shape[0]
        if self.path.stat().st_size != expected:
            raise ValueError(f"{self.path} holds {self.path.stat().st_size} bytes, not the {expected} of {tuple(shape)}")
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:  # to DataLoader workers started by spawn: they open the file again
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("decoded images are selected along dimension 0 only")
        rows = index.tolist()
        out = torch.empty((len(rows), *self.shape[1:]), dtype=torch.uint8)
        array, fd, size = out.numpy().reshape(len(rows), self.row_bytes), self._file(), len(self)
        for i, row in enumerate(rows):
            if not -size <= row < size:
                raise IndexError(f"index {row} is out of range for {size} images")
            read = os.preadv(fd, [array[i]], (row % size) * self.row_bytes)
            if read != self.row_bytes:
                raise OSError(f"{self.path}: short read of image {row} ({read} of {self.row_bytes} bytes)")
        return out

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self.index_select(0, torch.tensor([index]))[0]
        if isinstance(index, slice):
            return self.index_select(0, torch.arange(len(self))[index])
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        return self.index_select(0, index.flatten().long())

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def decode_to_file(path: Path, items: Sequence, decode: Callable[[object], torch.Tensor], shape: tuple[int, ...],
                   progress: bool = False, workers: int | None = None) -> Path:
    """Decode each of ``items`` with ``decode`` (to a uint8 tensor of ``shape[1:]``) into ``path``, in order.

    DataLoader workers decode in parallel (``workers``, default: the cores, at most 8); the file is
    written under a temporary name and renamed when complete, so a crash leaves no partial file
    where a later run would look, and two processes writing the same file do not clash.
    """
    from torch.utils.data import DataLoader

    from zoo.progress import progress_bar

    path.parent.mkdir(parents=True, exist_ok=True)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    # A generator of its own: the workers' seeds are not drawn from the global RNG, so a run draws the
    # same random numbers whether or not it had to decode first.
    loader = DataLoader(_Decoding(items, decode), batch_size=16, num_workers=workers, collate_fn=list,
                        generator=torch.Generator())
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as f, progress_bar(progress, len(items), "decoding images to disk") as advance:
            for decoded in loader:
                for item in decoded:
                    if isinstance(item, Exception):  # raised in a worker: here as itself, not wrapped in a traceback
                        raise item
                    if item.shape != torch.Size(shape[1:]) or item.dtype != torch.uint8:
                        raise ValueError(f"decoded an image to {item.dtype} {tuple(item.shape)}, expected uint8 {tuple(shape[1:])}")
                    f.write(memoryview(item.contiguous().numpy()))
                advance(len(decoded))
                del decoded
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class _Decoding(torch.utils.data.Dataset):
    def __init__(self, items: Sequence, decode: Callable) -> None:
        self.items, self.decode = items, decode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor | Exception:
        try:
            return self.decode(self.items[i])
        except Exception as err:  # handed to the main process, which raises it
            return err
