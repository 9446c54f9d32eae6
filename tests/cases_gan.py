import torch

from tests.cases import ModelCase
from tests.fakes import RandomImages

# Tiny networks; few quality samples so that the validation round of a fast_dev_run stays cheap.
TINY = dict(latent_dim=8, val_samples=32, test_samples=32)


def _through_both_networks(model, z):
    """A scalar that depends on the generator and the discriminator: D(G(z))."""
    return model.discriminator(model(z)).square().sum()


def _conditional_input():
    return torch.randn(4, 8), torch.tensor([0, 3, 9, 3])


def _through_both_networks_conditional(model, inputs):
    z, labels = inputs
    return model.discriminator(model(z, labels), labels).square().sum()


def _through_both_networks_and_the_classifier(model, inputs):
    """D(G(z)) and the auxiliary classifier's logits: together they depend on every parameter."""
    z, labels = inputs
    logits, class_logits = model.discriminator.scores(model(z, labels), labels)
    return logits.square().sum() + class_logits.square().sum()


CASES = [
    ModelCase("gan", dict(arch="mlp", generator_hidden=[32], discriminator_hidden=[32], **TINY),
              make_input=lambda: torch.randn(4, 8), make_datamodule=RandomImages,
              scalar=_through_both_networks, output_shape=(4, 1, 28, 28), id="gan-mlp"),
    ModelCase("gan", dict(arch="dcgan", channels=4, **TINY),
              make_input=lambda: torch.randn(4, 8), make_datamodule=RandomImages,
              scalar=_through_both_networks, output_shape=(4, 1, 28, 28), id="gan-dcgan"),
    ModelCase("gan", dict(arch="dcgan", channels=4, num_classes=10, loss="hinge", spectral_norm=True, ema_decay=0.9,
                          **TINY),
              make_input=_conditional_input, make_datamodule=RandomImages,
              scalar=_through_both_networks_conditional, output_shape=(4, 1, 28, 28), id="gan-conditional-sn-ema"),
    ModelCase("gan", dict(arch="decoder", discriminator_arch="dcgan", generator_hidden=[32], channels=4, **TINY),
              make_input=lambda: torch.randn(4, 8), make_datamodule=RandomImages,
              scalar=_through_both_networks, output_shape=(4, 1, 28, 28), id="gan-decoder-conv-discriminator"),
    # cgan_mnist's layout: a VAE decoder's generator, an MLP discriminator with an auxiliary classifier
    ModelCase("gan", dict(arch="decoder", generator_hidden=[32], discriminator_hidden=[32], num_classes=10,
                          spectral_norm=True, classifier_weight=1.0, ema_decay=0.9, **TINY),
              make_input=_conditional_input, make_datamodule=RandomImages,
              scalar=_through_both_networks_and_the_classifier, output_shape=(4, 1, 28, 28), id="gan-decoder-acgan"),
]
