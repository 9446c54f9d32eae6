"""A callback for the multi-process tests: which training samples each rank sees."""

import hashlib
from collections import Counter
from pathlib import Path

import torch

from lightning.pytorch.callbacks import Callback


class RecordSamples(Callback):
    """Append a fingerprint of every training sample this rank trains on (a hash of its values' bytes,
    and its label) to ``folder/rank<global rank>.txt``, one line a sample: ``epoch hash label``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x, y = batch
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"rank{trainer.global_rank}.txt").open("a") as f:
            f.writelines(f"{trainer.current_epoch} {key}\n" for key in fingerprints(x, y))


def fingerprints(x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """``hash label`` of each sample of a batch."""
    x = x.detach().cpu().contiguous()
    return [f"{hashlib.sha1(row.numpy().tobytes()).hexdigest()[:16]} {int(label)}" for row, label in zip(x, y.tolist())]


def split_fingerprints(dataset) -> Counter:
    """How many times each fingerprint is in a split (a dataset may hold the same image twice)."""
    x, y = dataset.__getitems__(list(range(len(dataset))))
    return Counter(fingerprints(x, y))


def read_samples(folder: Path) -> dict[int, list[tuple[str, str]]]:
    """rank -> the (epoch, fingerprint) of each sample it trained on, in order."""
    return {int(path.stem.removeprefix("rank")): [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]
            for path in sorted(Path(folder).glob("rank*.txt"))}


def check_shards(seen: dict[int, list[tuple[str, str]]], split: Counter, epochs: int) -> None:
    """Each epoch, the ranks' samples together are the training split, each sample once: disjoint shards
    (DistributedSampler repeats a few samples to even out the shards, fewer than there are ranks)."""
    assert sorted(seen) == list(range(len(seen))) and len({len(lines) for lines in seen.values()}) == 1
    for epoch in map(str, range(epochs)):
        together = Counter(key for lines in seen.values() for e, key in lines if e == epoch)
        assert together, f"epoch {epoch}: no sample recorded"
        assert not split - together, f"epoch {epoch}: samples of the split no rank trained on"
        assert sum((together - split).values()) < len(seen), f"epoch {epoch}: ranks trained on the same samples"
