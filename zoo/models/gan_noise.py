"""A GAN's noise drawn from a Gaussian mixture instead of N(0, I) (``GAN(noise_components=K)``).

The mixture is fitted with scikit-learn to the codes a trained VAE gives the training images (the
ex-post density estimate of Ghosh et al. 2020), so the noise lands where a generator started from
that VAE's decoder has learnt to draw. Its parameters are three buffers of the GAN (``noise_weights``,
``noise_means``, ``noise_scale_tril``), saved with its weights. Drawing from it needs standard normal
noise and one uniform number per row, which picks the component; :class:`MixtureNoise` is the GAN
with that draw built in, which ``zoo export`` writes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

def unfitted_mixture(components: int, latent_dim: int) -> dict[str, torch.Tensor]:
    """The mixture's buffers before it is fitted: ``components`` equal components, each N(0, I)."""
    return {"noise_weights": torch.full((components,), 1.0 / components),
            "noise_means": torch.zeros(components, latent_dim),
            "noise_scale_tril": torch.eye(latent_dim).expand(components, -1, -1).clone()}


def draw_from_mixture(eps: torch.Tensor, choice: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                      scale_tril: torch.Tensor) -> torch.Tensor:
    """Noise (N, D) from the mixture for standard normal ``eps`` (N, D) and uniform ``choice`` (N,),
    which picks each row's component by the components' ``weights`` (K,); ``means`` (K, D) and
    ``scale_tril`` (K, D, D), the Cholesky factors of the covariances, place it."""
    edges = weights.cumsum(0)
    # the component whose cumulative weight first reaches choice (a sum of comparisons, which exports)
    k = (choice.unsqueeze(1) > (edges / edges[-1])[:-1]).sum(1)  # (N,)
    return means[k] + (scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def fit_noise_mixture(encoder: Callable, dataset, components: int, collate_fn: Callable | None = None,
                      batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """A ``components``-Gaussian mixture (full covariances, scikit-learn, seed 0) fitted to
    ``encoder``'s codes of every (image, label) of ``dataset`` (batched by ``collate_fn``):
    ``noise_weights``, ``noise_means`` and ``noise_scale_tril`` (the Cholesky factors of the covariances)."""
    import numpy as np
    from lightning.pytorch.utilities import rank_zero_info
    from sklearn.mixture import GaussianMixture

    codes = []
    for images, labels, *_ in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                                          collate_fn=collate_fn):
        codes.append(encoder(images, labels))
    codes = torch.cat(codes).double().numpy()
    rank_zero_info(f"Fitting a {components}-component Gaussian mixture to the codes of {len(codes):,} training "
                   "images (the GAN's noise)...")
    mixture = GaussianMixture(components, covariance_type="full", random_state=0, max_iter=200).fit(codes)
    if not mixture.converged_:
        rank_zero_info("The Gaussian mixture did not converge in 200 EM steps; its last estimate is used.")
    return {"noise_weights": torch.from_numpy(mixture.weights_).float(),
            "noise_means": torch.from_numpy(mixture.means_).float(),
            "noise_scale_tril": torch.from_numpy(np.linalg.cholesky(mixture.covariances_)).float()}


class MixtureNoise(torch.nn.Module):
    """A GAN whose noise comes from a Gaussian mixture, as one module that draws from it (what ``zoo
    export`` writes): its noise has one column more than the GAN's, uniform in [0, 1), which picks each
    row's component; the others are standard normal (see ``GAN(noise_components=...)``)."""

    def __init__(self, gan: torch.nn.Module) -> None:
        super().__init__()
        self.gan = gan

    @property
    def condition_classes(self) -> int | None:
        return self.gan.condition_classes

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        gan = self.gan
        z = draw_from_mixture(noise[:, :-1], noise[:, -1], gan.noise_weights, gan.noise_means, gan.noise_scale_tril)
        return gan(z) if labels is None else gan(z, labels)
