"""The autoencoder lectures' claims, measured on real MNIST with the shipped weights.

    ZOO_DATA_DIR=<data root> python -m benchmarks.autoencoders

Prints one table: a linear autoencoder against PCA at the same code size, denoising gain in PSNR,
sparsity of sparse vs plain codes, a linear classifier on frozen codes, and the VAE's likelihood.
The test suite asserts the same measurements (tests/test_autoencoders.py) with these functions.
"""

from __future__ import annotations

import argparse
import math

import lightning as L
import torch

import zoo
from zoo.data import MNISTDataModule
from zoo.models import Autoencoder
from zoo.models.reconstruction import hoyer_sparsity


def load_mnist(data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels), images as floats in [0, 1]."""
    datamodule = MNISTDataModule(data_dir=data_dir)
    x_train, y_train = datamodule.load_split(train=True)
    x_test, y_test = datamodule.load_split(train=False)
    return x_train.float() / 255, y_train, x_test.float() / 255, y_test


def psnr(estimate: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return 10 * math.log10(1 / torch.mean((estimate - target) ** 2).item())


def linear_ae_vs_pca(x_train: torch.Tensor, x_test: torch.Tensor, code_size: int = 8,
                     steps: int = 600) -> dict[str, float]:
    """Test reconstruction MSE of PCA and of a linear autoencoder trained by SGD, same code size.

    Both see the same training images; the autoencoder's reconstruction is not clamped to [0, 1],
    like PCA's.
    """
    from sklearn.decomposition import PCA

    train_flat, test_flat = x_train.flatten(1), x_test.flatten(1)
    pca = PCA(code_size).fit(train_flat.numpy())
    pca_rec = torch.from_numpy(pca.inverse_transform(pca.transform(test_flat.numpy()))).float()
    torch.manual_seed(0)
    model = Autoencoder(linear=True, code_size=code_size, init="default", lr=0.01)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, x_train), batch_size=256, shuffle=True)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader)
    with torch.no_grad():
        ae_rec = model.net(x_test).flatten(1)
    return {"pca_mse": ((pca_rec - test_flat) ** 2).mean().item(), "ae_mse": ((ae_rec - test_flat) ** 2).mean().item()}


@torch.no_grad()
def denoising(x: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """PSNR of the noisy images, of ``dae_mnist``'s output and of ``ae_mnist``'s output on them."""
    dae, plain = zoo.load_pretrained("dae_mnist"), zoo.load_pretrained("ae_mnist")
    noisy = dae.corrupt(x, torch.Generator().manual_seed(seed))
    return {"noise": f"{dae.hparams.noise} {dae.hparams.noise_level:g}", "noisy_psnr": psnr(noisy, x),
            "denoised_psnr": psnr(dae(noisy), x), "plain_psnr": psnr(plain(noisy), x)}


@torch.no_grad()
def sparsity(x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Hoyer sparsity, share of near-zero entries and mean activation of plain vs sparse codes."""
    results = {}
    for name in ("ae_mnist", "sparse_ae_mnist"):
        code = zoo.load_pretrained(name).encode(x)
        # Near zero: below a tenth of the image's largest |entry| (scale-free, like Hoyer's measure).
        near_zero = (code.abs() < 0.1 * code.abs().amax(1, keepdim=True)).float().mean().item()
        results[name] = {"hoyer": hoyer_sparsity(code).mean().item(), "near_zero": near_zero,
                         "mean": code.mean().item(), "code_size": code.shape[1]}
    return results


@torch.no_grad()
def linear_probe(x_train, y_train, x_test, y_test, weights: str = "ae_mnist", n_train: int = 10000) -> float:
    """Test accuracy of logistic regression on the frozen codes of ``weights`` (first ``n_train`` images)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    encoder = zoo.load_pretrained(weights)
    train_codes, test_codes = encoder.encode(x_train[:n_train]), encoder.encode(x_test)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    classifier.fit(train_codes.numpy(), y_train[:n_train].numpy())
    return float(classifier.score(test_codes.numpy(), y_test.numpy()))


@torch.no_grad()
def vae_likelihood(x: torch.Tensor, num_samples: int = 100, seed: int = 0, name: str = "vae_mnist",
                   labels: torch.Tensor | None = None) -> dict[str, float]:
    """Negative ELBO and importance-sampled NLL (nats per image) of the VAE ``name`` on binarized ``x``;
    a class-conditional VAE (``cvae_mnist``) also needs the ``labels`` of ``x`` and gives -log p(x|y)."""
    model = zoo.load_pretrained(name)
    generator = torch.Generator().manual_seed(seed)
    binary, _ = model.prepare_batch(x, "test", generator)
    nelbo = model.loss_terms(binary, binary, "test", generator, labels)["nelbo"].item()
    nll = -model.log_likelihood(binary, num_samples, generator, labels=labels).mean().item()
    return {"nelbo": nelbo, "nll": nll}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="data root (default: $ZOO_DATA_DIR)")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = load_mnist(args.data_dir)
    pca = linear_ae_vs_pca(x_train[:3000], x_test[:2000])
    dae = denoising(x_test[:1000])
    sparse = sparsity(x_test[:2000])
    probe = linear_probe(x_train, y_train, x_test, y_test)
    recorded = zoo.load_pretrained("vae_mnist").hparams.nll_samples
    from zoo.weights import read_manifest

    vae = read_manifest()["vae_mnist"]["metrics"]
    print("| claim | measured |\n|---|---|")
    print(f"| linear AE = PCA (code 8, 3,000 train / 2,000 test images) | AE MSE {pca['ae_mse']:.5f} vs PCA "
          f"{pca['pca_mse']:.5f} ({100 * (pca['ae_mse'] / pca['pca_mse'] - 1):+.1f}%) |")
    print(f"| denoising ({dae['noise']}, 1,000 test images) | noisy {dae['noisy_psnr']:.1f} dB -> `dae_mnist` "
          f"{dae['denoised_psnr']:.1f} dB (+{dae['denoised_psnr'] - dae['noisy_psnr']:.1f} dB); "
          f"`ae_mnist` on the same input {dae['plain_psnr']:.1f} dB |")
    plain, sp = sparse["ae_mnist"], sparse["sparse_ae_mnist"]
    print(f"| sparse codes (size {sp['code_size']}, 2,000 test images) | Hoyer {sp['hoyer']:.3f} vs plain "
          f"{plain['hoyer']:.3f}; near-zero entries {100 * sp['near_zero']:.0f}% vs {100 * plain['near_zero']:.0f}%; "
          f"mean activation {sp['mean']:.3f} |")
    print(f"| codes as features (logistic regression on `ae_mnist` codes, 10,000 train images) | "
          f"{100 * probe:.2f}% test accuracy |")
    print(f"| VAE likelihood, binarized test split (manifest, k = {recorded}) | NELBO {vae['test/nelbo']:.2f}, "
          f"NLL {vae['test/nll']:.2f} nats |")


if __name__ == "__main__":
    main()
