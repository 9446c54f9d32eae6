"""Generative adversarial network (Goodfellow et al. 2014) with manual optimisation that runs under DDP.

Training alternates ``d_steps`` discriminator updates and ``g_steps`` generator updates per batch,
with the non-saturating generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, section 3) and
optional one-sided label smoothing (Salimans et al. 2016). Quality is measured by the Fréchet
distance and mode coverage of :mod:`zoo.quality` (features of the shipped ``lenet5_mnist``).

Why every backward reaches every parameter: under DDP, Lightning arms the gradient reducer before
each ``manual_backward`` and (with the default ``find_unused_parameters=False``) the reducer waits
for a gradient of *every* parameter. Lightning's own GAN example detaches the fake images in the
discriminator step, so the generator never produces gradients there and DDP stops with "It looks
like your LightningModule has parameters that were not used in producing the loss" (unless one pays
for ``find_unused_parameters=True``, which then skips those gradients anyway). Here the discriminator
loss is back-propagated through the generator and the generator loss through the discriminator, so
each backward all-reduces a gradient for every parameter; each optimiser zeroes its own gradients
right before its backward, so the other network's by-product gradients are never applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from zoo.models.base import WeightedMean, ZooModule, compute_and_reset
from zoo.nets.gan import build_gan_nets
from zoo.optim import build_optimizer, check_optim_args
from zoo.quality import SampleQuality

TRAIN_TERMS = ("d_loss", "g_loss", "d_real", "d_fake")

SAMPLE_CHUNK = 1000  # images generated per forward pass when sampling many


class GAN(ZooModule):
    """A GAN for 28x28 grayscale images in [0, 1].

    ``forward(z)`` maps noise (N, latent_dim) to images (N, 1, 28, 28) in [0, 1]; ``sample(n)``
    draws the noise itself. ``fixed_noise`` is a seeded noise batch, so sample grids from
    :meth:`fixed_samples` are comparable across epochs and runs.

    Args:
        arch: ``mlp`` (Goodfellow et al. 2014) or ``dcgan`` (Radford et al. 2016); see :mod:`zoo.nets.gan`.
        latent_dim: size of the noise vector z ~ N(0, I).
        generator_hidden: hidden widths of the MLP generator.
        discriminator_hidden: hidden widths of the MLP discriminator.
        channels: base width of the DCGAN networks.
        dropout: dropout in the MLP discriminator.
        minibatch_std: give the discriminator the minibatch standard-deviation feature (Karras et
            al. 2018), which counters mode collapse; see :mod:`zoo.nets.gan`.
        optimizer: optimiser of both networks, by name (:func:`zoo.optim.build_optimizer`).
        lr_generator: generator learning rate.
        lr_discriminator: discriminator learning rate.
        beta1: Adam's first-moment decay (0.5 as in Radford et al. 2016; 0.9 is Adam's default,
            which makes GAN training oscillate). Only used by adam/adamw.
        weight_decay: L2 penalty of both optimisers.
        label_smoothing: real images get target ``1 - label_smoothing`` in the discriminator loss
            (one-sided, Salimans et al. 2016); fakes keep target 0.
        d_steps: discriminator updates per training batch (``k`` in Goodfellow et al. 2014, Alg. 1),
            each with fresh noise.
        g_steps: generator updates per training batch.
        val_samples: generated images per validation round for ``val/fid_lenet`` (the checkpoint key).
        test_samples: generated images for the test metrics (10,000 as in the FID protocol).
        quality_seed: seed of the noise used for validation and test samples.
        num_fixed_samples: size of the fixed noise batch for sample grids.
    """

    monitor = "val/fid_lenet"
    monitor_mode = "min"

    def __init__(
        self,
        arch: str = "mlp",
        latent_dim: int = 100,
        generator_hidden: Sequence[int] = (256, 512, 1024),
        discriminator_hidden: Sequence[int] = (512, 256),
        channels: int = 64,
        dropout: float = 0.3,
        minibatch_std: bool = True,
        optimizer: str = "adam",
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        beta1: float = 0.5,
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
        d_steps: int = 1,
        g_steps: int = 1,
        val_samples: int = 5000,
        test_samples: int = 10000,
        quality_seed: int = 0,
        num_fixed_samples: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("channels", channels), ("d_steps", d_steps),
                            ("g_steps", g_steps), ("num_fixed_samples", num_fixed_samples)):
            if not value >= 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("val_samples", val_samples), ("test_samples", test_samples)):
            if not value >= 2:
                raise ValueError(f"{name} must be >= 2 (a covariance needs two samples), got {value}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        if not 0 <= beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
        check_optim_args(optimizer, lr_generator, weight_decay, 0.9, "none")
        check_optim_args(optimizer, lr_discriminator, weight_decay, 0.9, "none")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.input_shape = (latent_dim,)
        self.generator, self.discriminator = build_gan_nets(
            arch, latent_dim, generator_hidden, discriminator_hidden, channels, dropout, minibatch_std)
        fixed = torch.randn(num_fixed_samples, latent_dim, generator=torch.Generator().manual_seed(quality_seed))
        # Not persistent: it is rebuilt from the seed, so weight files hold only the networks.
        self.register_buffer("fixed_noise", fixed, persistent=False)
        # The judge lives outside the module tree: it is neither trained, DDP-synchronised nor saved.
        self._judge: dict[str, SampleQuality] = {}
        for term in TRAIN_TERMS:  # epoch means of the training terms, see training_step
            setattr(self, f"train_{term}", WeightedMean())

    # ----- generation -----------------------------------------------------------------------------

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [0, 1] for noise ``z`` of shape (N, latent_dim)."""
        self.validate_input(z)
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (n, 1, 28, 28) in [0, 1], generated in eval mode.

        Args:
            n: number of images.
            generator: a CPU ``torch.Generator`` for the noise; None uses the global RNG, so
                ``torch.manual_seed`` makes the result reproducible (on any device).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        z = torch.randn(n, self.hparams.latent_dim, generator=generator).to(self.device)
        was_training = self.generator.training
        self.generator.eval()  # batch norm uses its running statistics, so samples do not depend on n
        try:
            return torch.cat([self.generator(chunk) for chunk in z.split(SAMPLE_CHUNK)])
        finally:
            self.generator.train(was_training)

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """Images (num_fixed_samples, 1, 28, 28) from the fixed noise batch, for comparable grids."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(self.fixed_noise)
        finally:
            self.generator.train(was_training)

    # ----- training -------------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    def _discriminator_loss(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BCE of D on real (target 1 - smoothing) and fake (target 0) images; also mean D(x), D(G(z))."""
        fake = self.generator(self._noise(real.shape[0]))  # not detached: see the module docstring (DDP)
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)  # (N, 1) each
        real_target = torch.full_like(real_logits, 1.0 - self.hparams.label_smoothing)
        loss = (F.binary_cross_entropy_with_logits(real_logits, real_target)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return loss, torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()

    def _generator_loss(self, n: int) -> torch.Tensor:
        """Non-saturating loss -log D(G(z)): strong gradients early, when D rejects every fake."""
        fake_logits = self.discriminator(self.generator(self._noise(n)))
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def training_step(self, batch, batch_idx):
        real, _ = batch
        self._check_images(real)
        logging_step = self.is_logging_step()  # asked before this batch's steps move Trainer.global_step
        opt_g, opt_d = self.optimizers()
        for _ in range(self.hparams.d_steps):
            d_loss, d_real, d_fake = self._discriminator_loss(real)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
        for _ in range(self.hparams.g_steps):
            g_loss = self._generator_loss(real.shape[0])
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
        # Epoch means of every term (train_epoch_metrics), step values on the loggers' steps only.
        terms = {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
        for term, value in terms.items():
            getattr(self, f"train_{term}").update(value.detach(), real.shape[0])
        if logging_step:
            step = {f"train/{term}_step": value.detach() for term, value in terms.items()}
            self.log_dict({k: step.pop(k) for k in ("train/d_loss_step", "train/g_loss_step")}, prog_bar=True)
            self.log_dict(step)

    @property
    def optimizer_steps_per_batch(self) -> int:
        return self.hparams.d_steps + self.hparams.g_steps

    def training_metrics(self):
        return [getattr(self, f"train_{term}") for term in TRAIN_TERMS]

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        values = {f"train/{term}_epoch": compute_and_reset(getattr(self, f"train_{term}")) for term in TRAIN_TERMS}
        return {key: value for key, value in values.items() if value is not None}

    def _check_images(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != (1, 28, 28):
            got = "(" + ", ".join(str(d) for d in x.shape) + ")"
            raise ValueError(f"GAN trains on images of shape (N, 1, 28, 28), got {got}")

    def configure_optimizers(self):
        hp = self.hparams
        optimizers = []
        for net, lr in ((self.generator, hp.lr_generator), (self.discriminator, hp.lr_discriminator)):
            optimizer = build_optimizer(net.parameters(), hp.optimizer, lr, hp.weight_decay)
            for group in optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (hp.beta1, group["betas"][1])
            optimizers.append(optimizer)
        return optimizers  # [generator, discriminator], the order of self.optimizers()

    # ----- quality: val/fid_lenet picks the best checkpoint, test/* are the published numbers -----

    def _quality(self) -> SampleQuality:
        if "quality" not in self._judge:
            self._judge["quality"] = SampleQuality()
        return self._judge["quality"].to(self.device)

    def _quality_step(self, batch) -> None:
        real, _ = batch
        self._quality().update(real, real=True)  # only features of the real images are kept

    def _log_quality(self, stage: str, n: int) -> None:
        """Generate ``n`` images (split over DDP ranks), compare them with the real ones, log."""
        quality = self._quality()
        world, rank = self.trainer.world_size, self.global_rank
        noise = torch.Generator().manual_seed(self.hparams.quality_seed + rank)  # differs per rank
        quality.update(self.sample(math.ceil(n / world), generator=noise), real=False)
        results = quality.compute()  # torchmetrics sums the states over ranks first
        quality.reset()
        self.log_dict({f"{stage}/{key}": results[key] for key in ("fid_lenet", "coverage_min", "coverage_max")},
                      sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._quality_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val", self.hparams.val_samples)

    def test_step(self, batch, batch_idx):
        self._quality_step(batch)

    def on_test_epoch_end(self) -> None:
        self._log_quality("test", self.hparams.test_samples)
