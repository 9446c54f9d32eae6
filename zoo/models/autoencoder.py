"""Autoencoders as LightningModules: plain, denoising, sparse and variational.

They share one training module, :class:`~zoo.models.reconstruction.ReconstructionModule` (the
train/val/test steps, the reconstruction metrics, code statistics and the optimiser); each class
here says how to encode, decode and score a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchmetrics
from torch.nn import functional as F

from zoo.models.labels import check_class_names, check_labels, class_labels
from zoo.models.reconstruction import ReconstructionModule, rand_like, randn_like
from zoo.nets.autoencoder import AutoencoderNet
from zoo.quality import SampleQualityLogging

CODE_ACTIVATIONS = ("none", "relu", "sigmoid")
LOSSES = ("bce", "mse")
NOISES = ("gaussian", "mask")
SPARSITIES = ("kl", "l1")


class Autoencoder(ReconstructionModule):
    """A deterministic autoencoder, MLP or convolutional.

    Args:
        architecture: ``mlp`` or ``conv`` (see :class:`zoo.nets.autoencoder.AutoencoderNet`).
        code_size: size of the code.
        hidden_sizes: MLP encoder widths; the decoder mirrors them.
        channels: the two convolution widths of the conv architecture.
        activation: hidden activation.
        linear: no non-linearity anywhere (MLP without hidden layers, no code or output
            activation, MSE loss). Its optimum spans the same subspace as PCA with ``code_size``
            components (Baldi & Hornik 1989); ``forward`` clamps its output to [0, 1].
        code_activation: ``none``, ``relu`` or ``sigmoid`` applied to the code.
        loss: ``bce`` (pixels as Bernoulli means, sigmoid output) or ``mse``; summed over pixels,
            averaged over images. None: ``mse`` if ``linear`` else ``bce``.
        init: weight initialisation, ``default``, ``xavier`` or ``kaiming``.
        **kwargs: optimiser settings of :class:`ReconstructionModule`.
    """

    def __init__(
        self,
        architecture: str = "mlp",
        code_size: int = 32,
        hidden_sizes: Sequence[int] = (512, 256),
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
        linear: bool = False,
        code_activation: str = "none",
        loss: str | None = None,
        init: str = "kaiming",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        loss = loss or ("mse" if linear else "bce")
        if code_size < 1:
            raise ValueError(f"code_size must be >= 1, got {code_size}")
        if code_activation not in CODE_ACTIVATIONS:
            raise ValueError(f"code_activation must be one of {list(CODE_ACTIVATIONS)}, got {code_activation!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
        if linear and (architecture != "mlp" or code_activation != "none" or loss != "mse"):
            raise ValueError("linear=True needs architecture='mlp', code_activation='none' and loss='mse' "
                             f"(got {architecture!r}, {code_activation!r}, {loss!r})")
        self.loss_name, self.code_activation = loss, code_activation
        self.net = AutoencoderNet(
            architecture=architecture,
            code_size=code_size,
            hidden_sizes=[] if linear else hidden_sizes,
            channels=channels,
            activation=activation,
            init=init,
        )

    def _code_activation(self, h: torch.Tensor) -> torch.Tensor:
        name = self.code_activation
        return h if name == "none" else torch.relu(h) if name == "relu" else torch.sigmoid(h)

    def _output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.clamp(0, 1) if self.hparams.linear else torch.sigmoid(raw)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code, (N, code_size)."""
        self.validate_input(x)
        return self._code_activation(self.net.encode(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._output(self.net.decode(z))

    def reconstruction_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image loss summed over pixels, averaged over the batch; ``raw`` is the pre-activation output."""
        if self.loss_name == "bce":
            loss = F.binary_cross_entropy_with_logits(raw, target, reduction="sum")
        else:
            prediction = raw if self.hparams.linear else torch.sigmoid(raw)  # unclamped: gradients everywhere
            loss = F.mse_loss(prediction, target, reduction="sum")
        return loss / target.shape[0]

    def code_penalty(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra loss terms on the code (none for the plain autoencoder)."""
        return {}

    def loss_terms(self, inputs, target, stage, generator, labels=None):
        code = self._code_activation(self.net.encode(inputs))
        raw = self.net.decode(code)
        terms = {"recon_loss": self.reconstruction_loss(raw, target)}
        terms.update(self.code_penalty(code))
        loss = sum(terms.values())
        return {"loss": loss, "recon": self._output(raw), "code": code, **terms}


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder (Vincent et al. 2008): trained to reconstruct clean images from corrupted ones.

    The corruption is applied in training only; ``model(x)`` denoises whatever it is given. The test
    step additionally corrupts the test images with seeded noise and logs ``test/noisy_psnr`` (the
    corrupted input) and ``test/denoised_psnr`` (the model's output), both against the clean image.

    Args:
        noise: ``gaussian`` (additive, clipped to [0, 1]) or ``mask`` (pixels set to 0).
        noise_level: the Gaussian standard deviation, or the probability of masking a pixel.
        **kwargs: architecture and optimiser settings of :class:`Autoencoder`.
    """

    def __init__(self, noise: str = "gaussian", noise_level: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {list(NOISES)}, got {noise!r}")
        if not noise_level > 0 or (noise == "mask" and not noise_level < 1):
            raise ValueError(f"noise_level must be > 0 (and < 1 for mask), got {noise_level}")
        self.noisy_psnr = torchmetrics.image.PeakSignalNoiseRatio(data_range=1.0)
        self.denoised_psnr = torchmetrics.image.PeakSignalNoiseRatio(data_range=1.0)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The corrupted version of images ``x`` in [0, 1]."""
        level = self.hparams.noise_level
        if self.hparams.noise == "gaussian":
            return (x + level * randn_like(x, generator)).clamp(0, 1)
        return x * (rand_like(x, generator) >= level)

    def prepare_batch(self, x, stage, generator):
        return (self.corrupt(x, generator) if stage == "train" else x), x

    def test_step(self, batch, batch_idx):
        super().test_step(batch, batch_idx)
        x = batch[0]
        noisy = self.corrupt(x, torch.Generator().manual_seed(10_000 + batch_idx))
        self.noisy_psnr.update(noisy, x)
        self.denoised_psnr.update(self(noisy), x)
        self.log_dict({"test/noisy_psnr": self.noisy_psnr, "test/denoised_psnr": self.denoised_psnr}, on_epoch=True)


class SparseAutoencoder(Autoencoder):
    """Sparse autoencoder: a sparsity penalty on the code is added to the reconstruction loss.

    ``kl`` is the KL(rho || rho_hat_j) penalty on each unit's mean activation over the batch (Ng 2011,
    "Sparse autoencoder" lecture notes), for sigmoid codes; ``l1`` is the L1 norm of each code.
    The mean code activation is logged as ``<stage>/code_mean``, the Hoyer sparsity as ``<stage>/code_hoyer``.

    Args:
        sparsity: ``kl`` or ``l1``.
        sparsity_weight: weight of the penalty.
        sparsity_target: rho, the target mean activation of each unit (``kl`` only).
        code_activation: None: ``sigmoid`` for ``kl`` (which needs codes in (0, 1)), ``relu`` for ``l1``.
        **kwargs: architecture and optimiser settings of :class:`Autoencoder`.
    """

    def __init__(
        self,
        sparsity: str = "kl",
        sparsity_weight: float = 1.0,
        sparsity_target: float = 0.05,
        code_activation: str | None = None,
        **kwargs,
    ) -> None:
        if sparsity not in SPARSITIES:
            raise ValueError(f"sparsity must be one of {list(SPARSITIES)}, got {sparsity!r}")
        code_activation = code_activation or ("sigmoid" if sparsity == "kl" else "relu")
        if sparsity == "kl" and code_activation != "sigmoid":
            raise ValueError(f"sparsity='kl' needs code_activation='sigmoid' (codes in (0, 1)), got {code_activation!r}")
        if not sparsity_weight >= 0:
            raise ValueError(f"sparsity_weight must be >= 0, got {sparsity_weight}")
        if not 0 < sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in (0, 1), got {sparsity_target}")
        super().__init__(code_activation=code_activation, **kwargs)

    def code_penalty(self, code):
        hp = self.hparams
        if hp.sparsity == "l1":
            penalty = code.abs().sum(1).mean()
        else:
            rho = hp.sparsity_target
            rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6)  # (D,), each unit's mean activation
            penalty = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
        return {"sparsity_penalty": hp.sparsity_weight * penalty}


class VAE(SampleQualityLogging, ReconstructionModule):
    """Variational autoencoder (Kingma & Welling 2014) with a Bernoulli decoder and a standard normal prior.

    The encoder gives q(z|x) = N(mu, diag(exp(logvar))); a latent is drawn with the
    reparameterisation z = mu + exp(logvar / 2) * eps; the decoder gives Bernoulli means p(x|z). The
    loss is the negative ELBO in nats per image: -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)), the KL in
    closed form. With ``binarize`` the pixels are binarised stochastically: afresh every training
    step (dynamic binarisation), with seeded noise for validation and test.

    Test metrics (nats per image): ``test/nelbo`` and ``test/nll``, the importance-sampled negative
    log-likelihood with ``nll_samples`` samples (Burda, Grosse & Salakhutdinov 2016):
    -log p(x) ~= -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x).

    With ``iwae_samples`` k > 1 the model trains on that bound with k samples instead of the ELBO
    (the importance-weighted autoencoder of Burda et al.): a tighter bound, which gives a better
    likelihood for k decoder passes per image. ``nelbo`` is still logged, so runs compare.

    With ``num_classes`` it is a class-conditional VAE (Sohn, Lee & Yan 2015): the encoder q(z|x, y)
    and the decoder p(x|z, y) both read the one-hot class y beside their input, training uses the
    dataset's labels, and ``sample(n, labels=...)`` draws the digits asked for. ``model(x, labels)``,
    ``encode(x, labels)`` and ``decode(z, labels)`` then need the class of each image, and ``test/nll``
    is -log p(x|y). Its test phase also judges ``test_samples`` samples, an equal share per class,
    with :mod:`zoo.quality`: ``test/label_acc`` (the share the shipped LeNet-5 reads as the class
    asked for), ``test/fid_lenet`` against the test images, ``test/coverage_min`` and ``_max``.

    Args:
        architecture: ``mlp`` or ``conv``.
        latent_size: size of z.
        hidden_sizes: MLP encoder widths; the decoder mirrors them.
        channels: the two convolution widths of the conv architecture.
        activation: hidden activation.
        binarize: model stochastically binarised pixels (the usual MNIST benchmark) instead of grey levels.
        nll_samples: k, importance samples for ``test/nll``; 0 skips it (it costs k decoder passes per image).
        init: weight initialisation, ``default``, ``xavier`` or ``kaiming``.
        iwae_samples: k, importance samples of the training bound; 1 trains on the ELBO.
        num_classes: make the VAE class-conditional with this many classes; None: unconditional.
        class_names: the name of each class (None: the DataModule's names when training starts).
        test_samples: samples a conditional VAE's test phase judges (at least 2: a covariance).
        quality_seed: seed of the noise of those samples.
        **kwargs: optimiser settings of :class:`ReconstructionModule`.
    """

    can_sample = True

    def __init__(
        self,
        architecture: str = "mlp",
        latent_size: int = 50,
        hidden_sizes: Sequence[int] = (200, 200),
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
        binarize: bool = True,
        nll_samples: int = 1000,
        init: str = "kaiming",
        iwae_samples: int = 1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        test_samples: int = 10000,
        quality_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_class_names(num_classes, class_names)
        if not test_samples >= 2:
            raise ValueError(f"test_samples must be >= 2 (a covariance needs two samples), got {test_samples}")
        if latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {latent_size}")
        if nll_samples < 0:
            raise ValueError(f"nll_samples must be >= 0, got {nll_samples}")
        if iwae_samples < 1:
            raise ValueError(f"iwae_samples must be >= 1 (1: train on the ELBO), got {iwae_samples}")
        self.net = AutoencoderNet(
            architecture=architecture,
            code_size=latent_size,
            out_code_size=2 * latent_size,  # mu and logvar
            hidden_sizes=hidden_sizes,
            channels=channels,
            activation=activation,
            init=init,
            condition_size=num_classes or 0,
        )
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.test_nll = torchmetrics.MeanMetric()
        self._judge = {}  # see SampleQualityLogging

    def _condition(self, labels: torch.Tensor | None, x: torch.Tensor, call: str,
                   checked: bool = False) -> torch.Tensor | None:
        """The one-hot classes (N, num_classes) a conditional VAE's networks read for the N rows of ``x``;
        None for an unconditional VAE. ``checked``: the labels were checked already (by
        :func:`zoo.models.labels.batch_labels`), so they are not read again."""
        num_classes = self.hparams.get("num_classes")
        # The checks read sizes and values, which an exported graph cannot hold.
        if not (checked or torch.compiler.is_compiling()):
            labels = check_labels(labels, len(x), num_classes, "this VAE", call)
        return None if labels is None else F.one_hot(labels.long(), num_classes).to(self.dtype)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x), each (N, latent_size); a conditional VAE's q(z|x, y) needs the
        ``labels`` (N,) of the images."""
        self.validate_input(x)
        return self._posterior(x, self._condition(labels, x, "model.encode(x, labels)"))

    def _posterior(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net.encode(x, c).chunk(2, dim=1)
        return mu, logvar

    def point_code(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, labels)[0]  # the posterior mean

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli means p(x|z) in (0, 1), (N, 1, 28, 28); a conditional VAE's p(x|z, y) needs the
        ``labels`` (N,) of the images to draw."""
        c = self._condition(labels, z, "model.decode(z, labels)")
        return torch.sigmoid(self.net.decode(z, c))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The reconstruction of ``x`` in [0, 1] (a conditional VAE also needs the ``labels`` of ``x``)."""
        return self.decode(self.point_code(x, labels), labels)

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (Bernoulli means) decoded from z ~ N(0, I).

        Args:
            n: number of images.
            labels: for a conditional VAE, the class of the images: one class for all (an int or a
                class name), or one per image; None draws every class in turn (0, 1, ..., 0, 1, ...).
                An unconditional VAE refuses labels.
            generator: a CPU ``torch.Generator`` for z; None uses the global RNG, so ``torch.manual_seed``
                makes the result reproducible.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        classes = class_labels(labels, n, self.hparams.get("num_classes"), self.class_names, type(self).__name__)
        z = torch.randn(n, self.hparams.latent_size, generator=generator).to(self.device)
        return self.decode(z, None if classes is None else classes.to(self.device))

    def prepare_batch(self, x, stage, generator):
        if not self.hparams.binarize:
            return x, x
        binary = (rand_like(x, generator) < x).to(x.dtype)
        return binary, binary

    def loss_terms(self, inputs, target, stage, generator, labels=None):
        c = self._condition(labels, inputs, "training", checked=True)  # checked by batch_labels
        mu, logvar = self._posterior(inputs, c)
        k = self.hparams.get("iwae_samples", 1)
        eps = randn_like(mu.expand(k, *mu.shape), generator)  # (k, N, D)
        log_w, raw = self._log_weights(mu, logvar, eps, target, c)  # (k, N), (k, N, pixels)
        n = inputs.shape[0]
        log_px_z = log_w - self._log_prior_ratio(mu, logvar, eps)  # log p(x|z_i)
        recon_nll = -log_px_z.mean(0).sum() / n  # averaged over the k samples
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum() / n
        nelbo = recon_nll + kl
        loss = nelbo if k == 1 else -(torch.logsumexp(log_w, dim=0) - math.log(k)).sum() / n
        # The metrics judge the deterministic reconstruction that forward() returns.
        recon = torch.sigmoid(raw[0] if stage == "train" else self.net.decode(mu, c)).view_as(inputs)
        terms = {"loss": loss, "recon": recon, "code": mu, "nelbo": nelbo, "recon_nll": recon_nll, "kl": kl}
        if k > 1:
            terms["iwae_bound"] = loss
        return terms

    @staticmethod
    def _log_prior_ratio(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log p(z) - log q(z|x) at z = mu + std * eps, (k, N)."""
        z = mu + torch.exp(0.5 * logvar) * eps
        log_pz = -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)
        log_qz = -0.5 * (eps.square() + logvar + math.log(2 * math.pi)).sum(-1)
        return log_pz - log_qz

    def _log_weights(self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor, target: torch.Tensor,
                     c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance weights log p(x, z_i) / q(z_i|x), (m, N), for z_i = mu + std * eps_i (and the
        one-hot classes ``c`` (N, K) of a conditional VAE); and the decoder's logits (m, N, pixels)."""
        m, n = eps.shape[:2]
        z = mu + torch.exp(0.5 * logvar) * eps  # (m, N, D)
        raw = self.net.decode(z.reshape(m * n, -1), None if c is None else c.repeat(m, 1)).reshape(m, n, -1)
        flat = target.reshape(1, n, -1).expand_as(raw)
        log_px_z = -F.binary_cross_entropy_with_logits(raw, flat, reduction="none").sum(-1)
        return log_px_z + self._log_prior_ratio(mu, logvar, eps), raw

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
                       chunk: int = 100, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Importance-sampled log p(x) in nats, (N,), for binary images ``x`` (N, 1, 28, 28); for a
        conditional VAE log p(x|y), given the ``labels`` y (N,) of the images.

        Args:
            x: binary images (the model's targets).
            num_samples: k, samples from q(z|x) per image.
            generator: a CPU generator for the samples (None: the global RNG).
            chunk: samples decoded at once (bounds memory to chunk x N images).
            labels: the class of each image (conditional VAEs only).
        """
        self.validate_input(x)
        c = self._condition(labels, x, "model.log_likelihood(x, k, labels=labels)")
        mu, logvar = self._posterior(x, c)
        log_weights = []
        for start in range(0, num_samples, chunk):
            m = min(chunk, num_samples - start)
            eps = randn_like(mu.expand(m, *mu.shape), generator)  # (m, N, D)
            log_weights.append(self._log_weights(mu, logvar, eps, x, c)[0])  # (m, N)
        return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(num_samples)

    def test_step(self, batch, batch_idx):
        super().test_step(batch, batch_idx)  # which checked the batch's labels (batch_labels)
        labels = batch[1] if self.conditional else None
        if labels is not None:
            self._quality_step(batch)
        k = self.hparams.nll_samples
        if k > 0:
            generator = torch.Generator().manual_seed(batch_idx)
            target, _ = self.prepare_batch(batch[0], "test", generator)  # the same binarisation as the test loss
            self.test_nll.update(-self.log_likelihood(target, k, generator, labels=labels))
            self.log("test/nll", self.test_nll, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        if self.conditional:
            self._log_quality("test", self.hparams.test_samples)
