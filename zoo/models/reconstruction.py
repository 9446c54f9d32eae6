"""The family base of the models that reconstruct their input images: :class:`ReconstructionModule`.

It owns the train/val/test steps, the reconstruction metrics (MSE and PSNR on the clean [0, 1]
input), code statistics, the optimiser and what the family tells the tools (see
:class:`~zoo.models.base.ZooModule`). A subclass (:mod:`zoo.models.autoencoder`) says how to encode,
decode and score a batch.

Contract: ``model(x)`` for images ``x`` in [0, 1] of shape (N, 1, 28, 28) returns the reconstruction
in [0, 1] with the same shape; ``model.encode(x)`` returns the code (for the VAE, the pair
``(mu, logvar)`` of q(z|x)).
"""

from __future__ import annotations

import math

import torch
import torchmetrics

from zoo.models.base import ZooModule
from zoo.models.labels import batch_labels, label_kwargs
from zoo.optim import check_optim_args


def randn_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``t``; from ``generator`` (a CPU generator) when given."""
    if generator is None:
        return torch.randn_like(t)
    return torch.randn(t.shape, generator=generator).to(t.device, t.dtype)


def rand_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) noise shaped like ``t``; from ``generator`` (a CPU generator) when given."""
    if generator is None:
        return torch.rand_like(t)
    return torch.rand(t.shape, generator=generator).to(t.device, t.dtype)


def hoyer_sparsity(code: torch.Tensor) -> torch.Tensor:
    """Hoyer (2004) sparsity of each code vector, (N, D) -> (N,): 0 when all |entries| are equal, 1 for one-hot.

    It is scale-invariant, so a penalty that merely shrinks the code cannot fake sparsity.
    """
    d = code.shape[1]
    l1 = code.abs().sum(1)
    l2 = code.norm(dim=1).clamp_min(1e-12)
    return (math.sqrt(d) - l1 / l2) / (math.sqrt(d) - 1)


class ReconstructionModule(ZooModule):
    """Shared training logic for models that reconstruct their input images.

    Subclasses implement :meth:`encode`, :meth:`decode` and :meth:`loss_terms`, and may override
    :meth:`prepare_batch` (corrupting or binarising the input). Validation and test draw their
    randomness from a generator seeded with the batch index, so test metrics are reproducible. A
    class-conditional subclass (``hparams.num_classes`` set) is given each batch's labels too.

    Args:
        optimizer: sgd, sgd_momentum, adam, adamw, rmsprop or adagrad.
        lr: (peak) learning rate.
        weight_decay: L2 penalty, applied by the optimiser.
        momentum: momentum for sgd_momentum and rmsprop.
        scheduler: none, cosine, onecycle or step (see :func:`zoo.optim.build_scheduler`).
    """

    input_shape = (1, 28, 28)

    def __init__(
        self,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: str = "none",
    ) -> None:
        super().__init__()
        check_optim_args(optimizer, lr, weight_decay, momentum, scheduler)
        self.save_hyperparameters()
        # PSNR of the pooled MSE over the whole split: 10 log10(1 / MSE), pixels in [0, 1].
        metrics = torchmetrics.MetricCollection({
            "mse": torchmetrics.MeanSquaredError(),
            "psnr": torchmetrics.image.PeakSignalNoiseRatio(data_range=1.0),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    # --- what a subclass provides -------------------------------------------------------------
    def encode(self, x: torch.Tensor):
        """The code of images ``x`` (N, 1, 28, 28)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (N, 1, 28, 28), for codes ``z``."""
        raise NotImplementedError

    def point_code(self, x: torch.Tensor) -> torch.Tensor:
        """One code vector per image, (N, D): what forward decodes and the image callbacks interpolate."""
        return self.encode(x)

    def loss_terms(self, inputs: torch.Tensor, target: torch.Tensor, stage: str,
                   generator: torch.Generator | None, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``loss`` (scalar), ``recon`` (N, 1, 28, 28) in [0, 1], ``code`` (N, D) and any scalars to log.
        ``labels`` are the batch's classes for a conditional model, else None."""
        raise NotImplementedError

    def prepare_batch(self, x: torch.Tensor, stage: str,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, reconstruction target) for clean images ``x``."""
        return x, x

    # --- what the model does (see ZooModule) ----------------------------------------------------
    takes = "images"
    gives = "images"
    export_parts = ("model", "decoder")

    @property
    def condition_classes(self) -> int | None:
        return self.hparams.get("num_classes")

    def exported_module(self, part: str = "model"):
        if part == "decoder":
            return Decoder(self), (self.code_size,), "noise"
        return super().exported_module(part)

    def describe_output(self, batch: str, output_shape: tuple[int, ...]) -> str:
        dims = ", ".join(str(d) for d in output_shape)
        return f"images ({batch}, {dims}) with values in [0, 1]: the reconstructions"

    def embedding(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.point_code(x, **label_kwargs(self, labels))  # the code forward decodes

    @property
    def code_size(self) -> int:
        """The size of one code vector: what :meth:`decode` takes."""
        return self.hparams.get("latent_size") or self.hparams.get("code_size")

    # --- shared --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x`` in [0, 1], same shape."""
        return self.decode(self.point_code(x))

    @property
    def conditional(self) -> bool:
        """Whether the model is class-conditional: its forward, training and sampling take labels."""
        return self.hparams.get("num_classes") is not None

    def _shared_step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        labels = batch_labels(self, batch)  # before validate_input: see batch_labels
        self.validate_input(x)
        # Training draws fresh noise; evaluation is reproducible (same noise for the same batch).
        generator = None if stage == "train" else torch.Generator().manual_seed(batch_idx)
        inputs, target = self.prepare_batch(x, stage, generator)
        terms = self.loss_terms(inputs, target, stage, generator, labels)
        loss, recon, code = terms.pop("loss"), terms.pop("recon"), terms.pop("code")
        terms["code_mean"] = code.abs().mean()
        if code.shape[1] > 1:
            terms["code_hoyer"] = hoyer_sparsity(code).mean()
        n = x.shape[0]
        if stage == "train":  # see ZooModule.log_train_loss
            self.log_train_loss(loss, n)
            if self.is_logging_step():  # the loss terms of training steps, on the loggers' steps only
                self.log_dict({f"train/{key}": value.detach() for key, value in terms.items()}, on_step=True,
                              on_epoch=False)
            return loss
        # Epoch-level values, averaged across DDP ranks.
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        for key, value in terms.items():
            self.log(f"{stage}/{key}", value, on_epoch=True, sync_dist=True, batch_size=n)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(recon.detach(), x)  # against the clean input
        self.log_dict(metrics, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, batch_idx, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, batch_idx, "test")


class Decoder(torch.nn.Module):
    """An autoencoder's ``decode`` as a module of its own (what a VAE samples with, what ``zoo export
    --part decoder`` writes); a class-conditional VAE's decoder also takes the class of each image."""

    def __init__(self, autoencoder: ReconstructionModule) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    @property
    def condition_classes(self) -> int | None:
        return self.autoencoder.condition_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return self.autoencoder.decode(z)
        return self.autoencoder.decode(z, labels)
