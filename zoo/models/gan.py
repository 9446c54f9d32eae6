"""Generative adversarial network (Goodfellow et al. 2014) with manual optimisation that runs under DDP.

Training alternates ``d_steps`` discriminator updates and ``g_steps`` generator updates per batch,
with the non-saturating generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, section 3) and
optional one-sided label smoothing (Salimans et al. 2016), or the hinge loss (Lim & Ye 2017; Miyato
et al. 2018). Options for sharper samples: spectral normalisation of the discriminator, and an
exponential moving average of the generator's weights (Yazici et al. 2019) that sampling then uses.
With ``num_classes`` the GAN is class-conditional (a projection discriminator, optionally with an
auxiliary classifier, see :mod:`zoo.nets.gan`) and ``sample(n, labels=...)`` draws the classes asked
for. :meth:`GAN.with_weights` starts the generator from a trained VAE's decoder (``arch="decoder"``,
read by :mod:`zoo.models.gan_start`), and ``noise_components`` then draws the noise from a mixture
fitted to that VAE's codes (:mod:`zoo.models.gan_noise`). Quality is
measured by the Fréchet distance and mode coverage of :mod:`zoo.quality` (features of the shipped
``lenet5_mnist``), and for a conditional GAN by how often that judge sees the class asked for.

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

from collections.abc import Sequence

import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from zoo.errors import UsageError
from zoo.models.arguments import Together, at_least, check_arguments, in_range, one_of
from zoo.models.base import WeightedMean, ZooModule, compute_and_reset
from zoo.models.gan_noise import MixtureNoise, draw_from_mixture, fit_noise_mixture, unfitted_mixture
from zoo.models.gan_start import decoder_start
from zoo.models.labels import batch_labels, check_class_names, check_labels, class_labels
from zoo.nets.gan import build_gan_nets
from zoo.optim import build_optimizer, check_optim_args
from zoo.quality import SampleQuality, SampleQualityLogging

TRAIN_TERMS = ("d_loss", "g_loss", "d_real", "d_fake")

SAMPLE_CHUNK = 1000  # images generated per forward pass when sampling many

LOSSES = ("bce", "hinge")

#: The checks of GAN's arguments, each declared once (see zoo.models.arguments); the net's own
#: arguments (arch, discriminator_arch, the widths) are checked by zoo.nets.gan, the optimiser's by zoo.optim.
ARGUMENT_RULES = (
    *(at_least(name, 1) for name in ("latent_dim", "channels", "d_steps", "g_steps", "num_fixed_samples")),
    *(at_least(name, 2, " (a covariance needs two samples)") for name in ("val_samples", "test_samples")),
    in_range("dropout", 0, 1),
    in_range("label_smoothing", 0, 0.5),
    in_range("beta1", 0, 1),
    one_of("loss", LOSSES),
    Together(lambda a: a["loss"] == "hinge" and a["label_smoothing"],
             "label_smoothing is a target of the bce loss; the hinge loss has none (set it to 0)"),
    in_range("ema_decay", 0, 1, " (0: no moving average)"),
    at_least("noise_components", 0, " (0: noise from N(0, I))"),
    at_least("classifier_weight", 0, " (0: no auxiliary classifier)"),
    Together(lambda a: a["classifier_weight"] and a["num_classes"] is None,
             "classifier_weight trains an auxiliary classifier of the classes: set num_classes too"),
)


class GAN(SampleQualityLogging, ZooModule):
    """A GAN for 28x28 grayscale images in [0, 1].

    ``forward(z)`` maps noise (N, latent_dim) to images (N, 1, 28, 28) in [0, 1] (a conditional
    GAN's ``forward(z, labels)`` also takes the class of each, (N,) ints); ``sample(n)`` draws the
    noise itself. ``fixed_noise`` is a seeded noise batch, so sample grids from
    :meth:`fixed_samples` are comparable across epochs and runs.

    Args:
        arch: ``mlp`` (Goodfellow et al. 2014), ``dcgan`` (Radford et al. 2016) or ``decoder`` (a VAE
            decoder's layout, to start from one with :meth:`with_weights`); see :mod:`zoo.nets.gan`.
        latent_dim: size of the noise vector z ~ N(0, I) (or from the noise mixture, see ``noise_components``).
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
        loss: ``bce`` (the non-saturating GAN loss) or ``hinge`` (D: max(0, 1 - D(x)) + max(0, 1 + D(G(z))),
            G: -D(G(z))).
        spectral_norm: spectral normalisation of every discriminator layer (Miyato et al. 2018).
        ema_decay: the decay of an exponential moving average of the generator's weights, which
            ``forward`` in eval mode and ``sample`` then use; 0 turns it off.
        num_classes: make the GAN class-conditional with this many classes; None: unconditional.
        class_names: the name of each class (None: the DataModule's names when training starts).
        classifier_weight: a conditional GAN's auxiliary classifier (AC-GAN, Odena et al. 2017): the
            discriminator gets a second head that names the digit, trained by cross-entropy on real
            images, and the generator's loss adds this weight times that head's cross-entropy on its
            fakes for the class asked for; 0: no classifier.
        discriminator_arch: ``mlp`` or ``dcgan``: the discriminator of that family with any generator
            (e.g. a ``decoder`` generator against a convolutional discriminator); None: ``arch``'s own.
        noise_components: draw the noise from a Gaussian mixture of this many components (full
            covariances) instead of N(0, I). For a GAN started from a VAE (:meth:`with_weights`): when
            training starts, the mixture is fitted to the VAE's codes (posterior means) of the
            training images, the ex-post density estimate of Ghosh et al. 2020, so the noise lands
            where the decoder has learnt to draw digits. Its parameters are buffers, saved with the
            weights; ``forward(z)`` takes noise from it, which ``sample`` draws. 0: N(0, I).

    To start the generator from a trained VAE's decoder, build the model with
    :meth:`with_weights` (``arch="decoder"``).
    """

    monitor = "val/fid_lenet"
    monitor_mode = "min"
    # what the model does (see ZooModule)
    takes = "noise"
    gives = "images"
    can_sample = True

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
        loss: str = "bce",
        spectral_norm: bool = False,
        ema_decay: float = 0.0,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        classifier_weight: float = 0.0,
        discriminator_arch: str | None = None,
        noise_components: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_arguments(self.hparams, ARGUMENT_RULES)
        check_class_names(num_classes, class_names)
        for lr in (lr_generator, lr_discriminator):
            check_optim_args(optimizer, lr, weight_decay, 0.9, "none")
        self.automatic_optimization = False
        self.input_shape = (latent_dim,)
        self.generator, self.discriminator = build_gan_nets(
            arch, latent_dim, generator_hidden, discriminator_hidden, channels, dropout, minibatch_std,
            spectral_norm, num_classes, classifier=classifier_weight > 0, discriminator_arch=discriminator_arch)
        # The average is neither trained nor all-reduced (no gradients); it is saved with the weights.
        self.generator_ema = None
        if ema_decay > 0:
            self.generator_ema = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                               use_buffers=True).requires_grad_(False)
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        if noise_components:  # the mixture's parameters (see zoo.models.gan_noise), saved with the weights
            for name, value in unfitted_mixture(noise_components, latent_dim).items():
                self.register_buffer(name, value)
            self.register_buffer("noise_fitted", torch.tensor(False))
        self._code_encoder = None  # set by start_generator: what the mixture is fitted to
        seeded = torch.Generator().manual_seed(quality_seed)
        fixed = torch.randn(num_fixed_samples, latent_dim, generator=seeded)
        # Not persistent: rebuilt from the seed, so weight files hold only the networks (and the mixture).
        self.register_buffer("fixed_noise", fixed, persistent=False)
        self.register_buffer("fixed_choice", torch.rand(num_fixed_samples, generator=seeded), persistent=False)
        # The judge lives outside the module tree: it is neither trained, DDP-synchronised nor saved.
        self._judge: dict[str, SampleQuality] = {}
        # Epoch means of the training terms, see training_step (no saved state: weight files do not change).
        self.train_terms = torch.nn.ModuleDict({term: WeightedMean() for term in TRAIN_TERMS})

    # ----- what the model does (see ZooModule) -----------------------------------------------------

    @property
    def condition_classes(self) -> int | None:
        return self.hparams.get("num_classes")

    def exported_module(self, part: str = "model"):
        module, shape, kind = super().exported_module(part)
        if self.hparams.get("noise_components"):
            return MixtureNoise(self), (shape[0] + 1,), kind
        return module, shape, kind

    def describe_input(self, batch: str, shape: tuple[int, ...], kind: str) -> str:
        text = super().describe_input(batch, shape, kind)
        if not self.hparams.get("noise_components"):
            return text
        dims = ", ".join(str(d) for d in shape)
        mixture = (f"float32 noise ({batch}, {dims}): columns 0-{shape[0] - 2} drawn from N(0, I), column "
                   f"{shape[0] - 1} uniform in [0, 1), which picks the component of the GAN's noise mixture")
        return mixture + text[len(f"float32 noise ({batch}, {dims}) drawn from N(0, I)"):]

    def describe_output(self, batch: str, output_shape: tuple[int, ...]) -> str:
        dims = ", ".join(str(d) for d in output_shape)
        return f"images ({batch}, {dims}) with values in [0, 1]"

    # ----- starting from a VAE's decoder (see zoo.models.gan_start) --------------------------------

    @classmethod
    def weights_start(cls, weights: str, hparams: dict, new_head: bool = False):
        """A ``decoder`` GAN whose generator (and its moving average) starts as a trained VAE's decoder.

        Args:
            weights: a fully connected VAE's zoo weights: a shipped name (``cvae_mnist``, ``vae_mnist``)
                or a ``save_pretrained`` folder.
            new_head: refused: a generator starts from a whole decoder (the argument exists for the
                classifiers' ``create_model(..., weights=...)``).
            **hparams: the GAN's other hyperparameters. ``arch``, ``latent_dim``, ``generator_hidden``,
                ``num_classes`` and ``class_names`` left out come from the VAE; a value that does not
                fit its decoder is refused. The discriminator starts fresh.
        """
        if new_head:
            raise UsageError("new_head replaces a classifier's head; a GAN's generator starts from a VAE's whole decoder")
        settings, decoder, encoder = decoder_start(weights, hparams)
        return settings, lambda model: model.start_generator(decoder, f"the decoder of {weights!r}", encoder)

    def start_generator(self, decoder: dict[str, torch.Tensor], source: str, encoder=None) -> None:
        """Load a VAE decoder's state (see :func:`zoo.models.gan_start.decoder_start`) into the generator and its moving average;
        ``encoder`` (images -> codes) is what ``noise_components`` fits the noise to when training starts."""
        from zoo.weights import load_state_strict

        if self.hparams.arch != "decoder":
            raise UsageError(f"a VAE's decoder fits the GAN's 'decoder' generator, not arch={self.hparams.arch!r}")
        load_state_strict(self.generator.net, decoder, source)  # refuses a state that does not fit, loading nothing
        if self.generator_ema is not None:
            self.generator_ema.module.load_state_dict(self.generator.state_dict())
        self._code_encoder = encoder

    # ----- generation -----------------------------------------------------------------------------

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that draws samples: the moving average when there is one, else the generator."""
        return self.generator if self.generator_ema is None else self.generator_ema.module

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [0, 1] for noise ``z`` of shape (N, latent_dim) (and a conditional
        GAN's ``labels``, (N,) class indices). In eval mode the moving average generates, if any."""
        self.validate_input(z)
        if not torch.compiler.is_compiling():  # the checks read sizes and values, which an exported graph cannot hold
            labels = check_labels(labels, len(z), self.hparams.num_classes, "this GAN", "model(z, labels)")
        generator = self.generator if self.training else self.sampler
        return generator(z) if labels is None else generator(z, labels)

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (n, 1, 28, 28) in [0, 1], generated in eval mode.

        Args:
            n: number of images.
            labels: for a conditional GAN, the class of the images: one class for all (an int or a
                class name), or one per image; None cycles through the classes (0, 1, ..., 9, 0, ...).
                An unconditional GAN refuses labels.
            generator: a CPU ``torch.Generator`` for the noise; None uses the global RNG, so
                ``torch.manual_seed`` makes the result reproducible (on any device).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        classes = class_labels(labels, n, self.hparams.num_classes, self.class_names, type(self).__name__)
        z = torch.randn(n, self.hparams.latent_dim, generator=generator).to(self.device)
        choice = torch.rand(n, generator=generator).to(self.device) if self.hparams.get("noise_components") else None
        return self._generate(self._mixture(z, choice), classes)  # without a mixture, no draws beyond z

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        sampler = self.sampler
        was_training = sampler.training
        sampler.eval()  # batch norm uses its running statistics, so samples do not depend on n
        try:
            if labels is None:
                return torch.cat([sampler(chunk) for chunk in z.split(SAMPLE_CHUNK)])
            labels = labels.to(self.device)
            return torch.cat([sampler(zc, yc) for zc, yc in zip(z.split(SAMPLE_CHUNK), labels.split(SAMPLE_CHUNK))])
        finally:
            sampler.train(was_training)

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """Images (num_fixed_samples, 1, 28, 28) from the fixed noise batch, for comparable grids.

        A conditional GAN draws classes 0, 1, ... in turn."""
        classes = class_labels(None, len(self.fixed_noise), self.hparams.num_classes, None, type(self).__name__)
        return self._generate(self._mixture(self.fixed_noise, self.fixed_choice), classes)

    # ----- training -------------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.hparams.latent_dim, device=self.device)
        return self._mixture(z, torch.rand(n, device=self.device) if self.hparams.get("noise_components") else None)

    def _mixture(self, eps: torch.Tensor, choice: torch.Tensor | None) -> torch.Tensor:
        """Noise from the mixture for standard normal ``eps`` (N, latent_dim) and uniform ``choice`` (N,),
        which picks each row's component; ``eps`` itself without a mixture (or ``choice``)."""
        if choice is None or not self.hparams.get("noise_components"):
            return eps
        return draw_from_mixture(eps, choice, self.noise_weights, self.noise_means, self.noise_scale_tril)

    def on_train_start(self) -> None:
        if self.hparams.get("noise_components") and not bool(self.noise_fitted):
            self._fit_noise()

    @torch.no_grad()
    def _fit_noise(self) -> None:
        """Fit the noise mixture to the start VAE's codes of the training images (see
        :func:`zoo.models.gan_noise.fit_noise_mixture`), on rank zero; every rank gets its parameters."""
        if self._code_encoder is None:
            raise UsageError("noise_components fits the noise to the codes of the VAE the generator starts from: "
                             "build the GAN with GAN.with_weights(<VAE weights>, noise_components=K) (or --weights)")
        loader = self.trainer.train_dataloader
        if not isinstance(loader, torch.utils.data.DataLoader):
            raise UsageError("fitting the noise mixture reads the training images of one training DataLoader, "
                             f"got {type(loader).__name__}")
        fitted = None
        if self.global_rank == 0:  # the loader's dataset, not the loader: its sampler's position stays untouched
            fitted = fit_noise_mixture(self._code_encoder, loader.dataset, self.hparams.noise_components,
                                       loader.collate_fn)
        fitted = self.trainer.strategy.broadcast(fitted, src=0)
        for name, value in fitted.items():
            getattr(self, name).copy_(value.to(self.device))
        self.noise_fitted.fill_(True)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Classes for n fakes, uniform over the classes (None for an unconditional GAN)."""
        if self.hparams.num_classes is None:
            return None
        return torch.randint(self.hparams.num_classes, (n,), device=self.device)

    def _fake(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        labels = self._fake_labels(n)
        z = self._noise(n)
        return (self.generator(z) if labels is None else self.generator(z, labels)), labels

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Real-vs-fake logits (N, 1) of ``images`` (of classes ``labels``), and the auxiliary
        classifier's cross-entropy for those classes (0 without a classifier)."""
        logits, class_logits = self.discriminator.scores(images, labels)
        if class_logits is None:
            return logits, logits.new_zeros(())
        return logits, F.cross_entropy(class_logits, labels)

    def _discriminator_loss(self, real: torch.Tensor, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's loss on real and fake images; also mean sigmoid(D(x)) and sigmoid(D(G(z))).

        bce: real images get target 1 - smoothing, fakes 0. hinge: max(0, 1 - D(x)) + max(0, 1 + D(G(z))).
        """
        fake, fake_labels = self._fake(real.shape[0])  # not detached: see the module docstring (DDP)
        conditional = self.hparams.num_classes is not None
        real_logits, real_class_loss = self._discriminate(real, real_labels if conditional else None)  # (N, 1)
        fake_logits, _ = self._discriminate(fake, fake_labels)  # (N, 1); the classifier learns from real images only
        if self.hparams.loss == "hinge":
            loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        else:
            real_target = torch.full_like(real_logits, 1.0 - self.hparams.label_smoothing)
            loss = (F.binary_cross_entropy_with_logits(real_logits, real_target)
                    + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        loss = loss + self.hparams.classifier_weight * real_class_loss
        return loss, torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()

    def _generator_loss(self, n: int) -> torch.Tensor:
        """bce: the non-saturating -log D(G(z)), strong gradients early, when D rejects every fake.
        hinge: -D(G(z)). Plus the auxiliary classifier's weighted cross-entropy on the fakes, if any."""
        fake_logits, class_loss = self._discriminate(*self._fake(n))
        if self.hparams.loss == "hinge":
            loss = -fake_logits.mean()
        else:
            loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return loss + self.hparams.classifier_weight * class_loss

    def training_step(self, batch, batch_idx):
        real, real_labels = batch[0], batch_labels(self, batch)
        self._check_images(real)
        logging_step = self.is_logging_step()  # asked before this batch's steps move Trainer.global_step
        opt_g, opt_d = self.optimizers()
        for _ in range(self.hparams.d_steps):
            d_loss, d_real, d_fake = self._discriminator_loss(real, real_labels)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
        for _ in range(self.hparams.g_steps):
            g_loss = self._generator_loss(real.shape[0])
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
        # Epoch means of every term (train_epoch_metrics), step values on the loggers' steps only.
        terms = {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
        for term, value in terms.items():
            self.train_terms[term].update(value.detach(), real.shape[0])
        if logging_step:
            step = {f"train/{term}_step": value.detach() for term, value in terms.items()}
            self.log_dict({k: step.pop(k) for k in ("train/d_loss_step", "train/g_loss_step")}, prog_bar=True)
            self.log_dict(step)

    @property
    def optimizer_steps_per_batch(self) -> int:
        return self.hparams.d_steps + self.hparams.g_steps

    def training_metrics(self):
        return list(self.train_terms.values())

    def train_epoch_metrics(self) -> dict[str, torch.Tensor]:
        values = {f"train/{term}_epoch": compute_and_reset(metric) for term, metric in self.train_terms.items()}
        return {key: value for key, value in values.items() if value is not None}

    def _check_images(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != (1, 28, 28):
            got = "(" + ", ".join(str(d) for d in x.shape) + ")"
            raise ValueError(f"GAN trains on images of shape (N, 1, 28, 28), got {got}")
        self.mark_input_checked()  # the epoch's labels are checked too: see batch_labels

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

    def validation_step(self, batch, batch_idx):
        self._quality_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val", self.hparams.val_samples)

    def test_step(self, batch, batch_idx):
        self._quality_step(batch)

    def on_test_epoch_end(self) -> None:
        self._log_quality("test", self.hparams.test_samples)

