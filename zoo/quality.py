"""Offline quality measures for generated MNIST digits, judged by the zoo's own ``lenet5_mnist``.

Inception-based FID (Heusel et al. 2017) needs ImageNet weights that cannot be downloaded here, and
Inception features say little about 28x28 digits anyway. We use the same Fréchet distance on the
84-d penultimate layer (F6) of the shipped LeNet-5 instead:

- **Fréchet distance** ``fid_lenet``: ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` between
  Gaussians fitted to the features of real and generated images (torchmetrics'
  ``FrechetInceptionDistance`` with a custom feature extractor). Lower is better; it is biased
  upwards for small sample counts, so only numbers with the same counts are comparable.
- **Mode coverage**: the share of each digit among generated images, as classified by the same
  LeNet-5. A generator that covers MNIST's modes gives every digit about 10%; mode collapse shows
  as a share near 0 (``coverage_min``) and another far above 10% (``coverage_max``).
- **Label accuracy** (conditional generators): the share of images the same LeNet-5 classifies as
  the class they were generated for, ``label_acc``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance

JUDGE = "lenet5_mnist"


class ClassifierFeatures(nn.Module):
    """The frozen penultimate features of a zoo classifier, as a FID feature extractor.

    Args:
        classifier: a model with ``forward_features`` and ``net.num_features`` (e.g. ``lenet5_mnist``).
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_features = int(classifier.net.num_features)  # read by torchmetrics' FID

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.forward_features(images)  # (N, num_features)

    def train(self, mode: bool = True) -> ClassifierFeatures:
        return super().train(False)  # the judge never changes: keep dropout/batch norm in eval mode


class ClassCoverage(Metric):
    """Share of each class among images, as predicted by a classifier; summed across DDP ranks.

    Args:
        classifier: maps images (N, C, H, W) to logits (N, num_classes).
        num_classes: number of classes.
    """

    full_state_update = False

    def __init__(self, classifier: nn.Module, num_classes: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.classifier = classifier
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("hits", torch.tensor(0), dist_reduce_fx="sum")  # predicted == asked-for class
        self.add_state("labelled", torch.tensor(0), dist_reduce_fx="sum")  # images that came with a class

    def update(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        predicted = self.classifier(images).argmax(dim=1)
        self.counts += torch.bincount(predicted, minlength=self.num_classes)
        if labels is not None:
            self.hits += (predicted == labels.to(predicted.device)).sum()
            self.labelled += len(labels)

    def compute(self) -> torch.Tensor:
        return self.counts.float() / self.counts.sum().clamp(min=1)  # (num_classes,) shares

    def label_accuracy(self) -> torch.Tensor:
        """The share of labelled images classified as their label (NaN when none came with a label)."""
        share = self.hits.float() / self.labelled.clamp(min=1)
        return torch.where(self.labelled > 0, share, torch.full_like(share, float("nan")))  # no host read


class SampleQuality(nn.Module):
    """Fréchet distance and mode coverage of generated images against real ones.

    Feed real images with ``update(x, real=True)`` and generated ones with ``update(x, real=False)``
    (both (N, 1, 28, 28) in [0, 1]), then :meth:`compute`. Works under DDP: the states are summed
    across processes by torchmetrics.

    Args:
        classifier: the judge; None loads the shipped ``lenet5_mnist``.
    """

    def __init__(self, classifier: nn.Module | None = None) -> None:
        super().__init__()
        if classifier is None:
            from zoo.weights import load_pretrained

            classifier = load_pretrained(JUDGE)
        classifier = classifier.eval().requires_grad_(False)
        # Generated images are floats in [0, 1], the judge's own input format: normalize=True keeps
        # torchmetrics from converting them to uint8.
        self.fid = FrechetInceptionDistance(feature=ClassifierFeatures(classifier), normalize=True)
        self.coverage = ClassCoverage(classifier, num_classes=int(classifier.num_outputs))

    @torch.no_grad()
    def update(self, images: torch.Tensor, real: bool, labels: torch.Tensor | None = None) -> None:
        """Add real or generated images; ``labels`` are the classes generated images were asked for."""
        self.fid.update(images, real=real)
        if not real:
            self.coverage.update(images, labels)

    @torch.no_grad()
    def compute(self) -> dict[str, torch.Tensor]:
        """``fid_lenet``, ``coverage_min``, ``coverage_max``, the per-class ``shares`` and ``label_acc``
        (NaN unless the generated images came with labels)."""
        shares = self.coverage.compute()
        return {"fid_lenet": self.fid.compute().float(), "coverage_min": shares.min(),
                "coverage_max": shares.max(), "shares": shares,
                "label_acc": self.coverage.label_accuracy().to(shares.device)}

    def reset(self) -> None:
        self.fid.reset()
        self.coverage.reset()


class SampleQualityLogging:
    """Sample-quality logging for a generative LightningModule (the GAN, the conditional VAE).

    The module feeds each evaluation batch's real images to :meth:`_quality_step`, then calls
    :meth:`_log_quality` at the end of the epoch, which draws ``n`` images with
    ``self.sample(n, labels, generator)`` (seeded by ``hparams.quality_seed``, split over DDP ranks)
    and logs ``<stage>/fid_lenet``, ``coverage_min``, ``coverage_max`` and, for a class-conditional
    model (``hparams.num_classes``), ``label_acc``. The module sets ``self._judge = {}`` in
    ``__init__``: the judge lives outside the module tree, so it is neither trained, synchronised
    by DDP nor saved with the weights.
    """

    def _quality(self) -> SampleQuality:
        if "quality" not in self._judge:
            self._judge["quality"] = SampleQuality()
        return self._judge["quality"].to(self.device)

    def _quality_step(self, batch) -> None:
        real = batch[0]
        self._quality().update(real, real=True)  # only features of the real images are kept

    def _log_quality(self, stage: str, n: int) -> None:
        """Generate ``n`` images (split over DDP ranks), compare them with the real ones, log.

        A conditional model draws every class equally often and also logs ``label_acc``, the share of
        samples the judge classifies as the class asked for."""
        from zoo.models.labels import class_labels

        quality = self._quality()
        world, rank = self.trainer.world_size, self.global_rank
        noise = torch.Generator().manual_seed(self.hparams.quality_seed + rank)  # differs per rank
        count = math.ceil(n / world)
        classes = class_labels(None, count, self.hparams.get("num_classes"), None, type(self).__name__)
        quality.update(self.sample(count, labels=classes, generator=noise), real=False, labels=classes)
        results = quality.compute()  # torchmetrics sums the states over ranks first
        quality.reset()
        keys = ("fid_lenet", "coverage_min", "coverage_max") + (("label_acc",) if classes is not None else ())
        self.log_dict({f"{stage}/{key}": results[key] for key in keys}, sync_dist=True)
