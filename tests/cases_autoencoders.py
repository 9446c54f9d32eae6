import torch

from tests.cases import ModelCase
from tests.fakes import RandomImages


def training_loss(model, x):
    """The training loss, which depends on every parameter (model(x) skips the VAE's logvar head);
    ``x`` is images, or (images, labels) for a class-conditional model."""
    x, labels = x if isinstance(x, tuple) else (x, None)
    inputs, target = model.prepare_batch(x, "train", None)
    return model.loss_terms(inputs, target, "train", None, labels)["loss"]


def _conditional_input():
    return torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 9, 3])


def case(name, hparams, id="", make_input=lambda: torch.rand(4, 1, 28, 28)):
    return ModelCase(name, hparams, make_input=make_input, make_datamodule=RandomImages, scalar=training_loss,
                     output_shape=(4, 1, 28, 28), id=id)


CASES = [
    case("ae", dict(code_size=8, hidden_sizes=[32])),
    case("ae", dict(architecture="conv", code_size=8, channels=[4, 8]), id="ae-conv"),
    case("ae", dict(linear=True, code_size=8), id="ae-linear"),
    case("dae", dict(code_size=8, hidden_sizes=[32], noise="mask", noise_level=0.3)),
    case("sparse_ae", dict(code_size=8, hidden_sizes=[32])),
    case("sparse_ae", dict(code_size=8, hidden_sizes=[32], sparsity="l1", sparsity_weight=0.1), id="sparse_ae-l1"),
    case("vae", dict(latent_size=4, hidden_sizes=[32], nll_samples=8)),
    case("vae", dict(architecture="conv", latent_size=4, channels=[4, 8], nll_samples=8), id="vae-conv"),
    case("vae", dict(latent_size=4, hidden_sizes=[32], nll_samples=8, num_classes=10, iwae_samples=3, test_samples=32),
         id="vae-conditional", make_input=_conditional_input),
    case("vae", dict(architecture="conv", latent_size=4, channels=[4, 8], nll_samples=8, num_classes=10,
                     test_samples=32), id="vae-conv-conditional", make_input=_conditional_input),
]
