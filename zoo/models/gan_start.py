"""Starting a GAN's generator from a trained VAE's decoder (``GAN.with_weights``, ``zoo fit --weights``).

A fully connected VAE's decoder has the layout of the GAN's ``decoder`` generator
(:class:`zoo.nets.gan.DecoderGenerator`), so its weights load unchanged. This module reads the VAE's
weight files: what they decide about the GAN (its latent size, widths and classes), the decoder's
state, and the VAE's encoder, whose codes the GAN's noise mixture is fitted to (:mod:`zoo.models.gan_noise`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from zoo.errors import UsageError


def decoder_start(weights: str, hparams: dict) -> tuple[dict, dict[str, torch.Tensor], Callable]:
    """What a fully connected VAE's weights decide for a GAN started from its decoder, the decoder, and
    the VAE's encoder.

    Returns the hyperparameters ``hparams`` leaves out (``arch="decoder"``, ``latent_dim``,
    ``generator_hidden``, ``num_classes``, ``class_names``), the decoder's state dict, keyed as
    :class:`zoo.nets.gan.DecoderGenerator`'s ``net``, and a function from images (and their labels,
    for a conditional VAE) to the VAE's codes. A value in ``hparams`` that does not fit the decoder is
    refused with the values it needs.
    """
    from zoo.models.autoencoder import VAE
    from zoo.weights import build_model, load_state_strict, model_class, read_pretrained

    config, state = read_pretrained(weights)
    vae_class = model_class(config, str(weights))
    hp = config.get("hparams", {})
    if not issubclass(vae_class, VAE) or hp.get("architecture", "mlp") != "mlp" or hp.get("activation", "relu") != "relu":
        kind = vae_class.__name__ if not issubclass(vae_class, VAE) else f"{hp.get('architecture')} VAE with {hp.get('activation')}"
        raise UsageError(f"{weights!r} is a {kind}: a GAN's generator starts from a fully connected ReLU VAE's "
                         "decoder (e.g. cvae_mnist or vae_mnist)")
    needed = {"arch": "decoder", "latent_dim": hp["latent_size"],
              "generator_hidden": list(reversed(hp["hidden_sizes"])), "num_classes": hp.get("num_classes")}
    wrong = [f"{key}={hparams[key]!r}" for key, value in needed.items()
             if key in hparams and (list(hparams[key]) if key == "generator_hidden" else hparams[key]) != value]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} does not fit the decoder of {weights!r}, which needs "
                         + ", ".join(f"{key}={value!r}" for key, value in needed.items()))
    settings = {key: value for key, value in needed.items() if key not in hparams}
    if hparams.get("class_names") is None and hp.get("class_names"):
        settings["class_names"] = list(hp["class_names"])
    prefix = "net.decoder."
    decoder = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    vae = build_model(config, str(weights))
    load_state_strict(vae, state, str(weights))
    return settings, decoder, functools.partial(_vae_codes, vae.eval())


def _vae_codes(vae, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``vae``'s posterior means (N, latent_size) of ``images`` (and their labels, if it is conditional)."""
    return vae.point_code(images, labels if vae.conditional else None)
