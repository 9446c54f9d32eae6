"""Autoencoders: the contract, the corruption / sparsity / ELBO maths, and real-MNIST claims.

The real-data claims on the shipped weights (denoising, sparsity, codes as features, VAE likelihood)
re-measure on part of the real test split; the linear autoencoder is trained here against PCA.
"""

import math

import pytest
import torch

import zoo
from benchmarks import autoencoders as evidence
from tests.conftest import REPO
from tests.test_cli import run_zoo
from zoo.models import VAE, Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from zoo.models.reconstruction import hoyer_sparsity
from zoo.weights import read_manifest

SMALL = dict(code_size=4, hidden_sizes=[16])


def small_models():
    torch.manual_seed(0)
    return [Autoencoder(**SMALL), Autoencoder(architecture="conv", code_size=4, channels=[4, 4]),
            Autoencoder(linear=True, code_size=4), DenoisingAutoencoder(**SMALL), SparseAutoencoder(**SMALL),
            VAE(latent_size=4, hidden_sizes=[16])]


@pytest.mark.parametrize("model", small_models(), ids=lambda m: type(m).__name__ + str(m.hparams.get("architecture", "")))
def test_reconstruction_contract(model):
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    code = model.encode(x)
    if isinstance(model, VAE):
        mu, logvar = code
        assert mu.shape == logvar.shape == (3, 4)
    else:
        assert code.shape == (3, 4)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 28, 28\), got \(3, 3, 28, 28\)"):
        model(torch.rand(3, 3, 28, 28))
    with pytest.raises(TypeError, match="x.float"):
        model.encode(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (Autoencoder, dict(code_size=0), "code_size"),
    (Autoencoder, dict(architecture="rnn"), "architecture"),
    (Autoencoder, dict(code_activation="tanh"), "code_activation"),
    (Autoencoder, dict(loss="l2"), "loss"),
    (Autoencoder, dict(linear=True, code_activation="relu"), "linear=True"),
    (Autoencoder, dict(lr=-1), "lr must be > 0"),
    (DenoisingAutoencoder, dict(noise="salt"), "noise"),
    (DenoisingAutoencoder, dict(noise="mask", noise_level=1.0), "noise_level"),
    (SparseAutoencoder, dict(sparsity="l2"), "sparsity"),
    (SparseAutoencoder, dict(sparsity="kl", code_activation="relu"), "sigmoid"),
    (SparseAutoencoder, dict(sparsity_target=0), "sparsity_target"),
    (SparseAutoencoder, dict(sparsity_weight=-1), "sparsity_weight"),
    (VAE, dict(latent_size=0), "latent_size"),
    (VAE, dict(nll_samples=-1), "nll_samples"),
    (VAE, dict(iwae_samples=0), "iwae_samples"),
    (Autoencoder, dict(hidden_sizes=[64, 0]), r"hidden_sizes must be positive layer widths, got \[64, 0\]"),
    (VAE, dict(hidden_sizes=[-1]), r"hidden_sizes must be positive layer widths, got \[-1\]"),
    (Autoencoder, dict(architecture="conv", channels=[8]), r"channels must be 2 positive layer widths, got \[8\]"),
])
def test_bad_arguments_are_refused_naming_the_field(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(("noise", "level"), [("gaussian", 0.1), ("mask", 0.25)])
def test_denoising_corrupts_in_training_only(noise, level):
    model = DenoisingAutoencoder(noise=noise, noise_level=level, **SMALL)
    x = torch.rand(64, 1, 28, 28) if noise == "mask" else torch.full((64, 1, 28, 28), 0.5)  # 5 sigma from the clip
    inputs, target = model.prepare_batch(x, "val", torch.Generator().manual_seed(0))
    assert inputs is x and target is x
    inputs, target = model.prepare_batch(x, "train", None)
    assert target is x and inputs.min() >= 0 and inputs.max() <= 1
    if noise == "mask":
        assert (inputs[inputs != x] == 0).all()
        assert abs((inputs != x).float().mean().item() - level) < 0.02
    else:
        assert abs((inputs - x).std().item() - level) < 0.002
    model.eval()
    assert torch.equal(model(x), model(x))  # no corruption outside training


def test_sparsity_penalties():
    kl = SparseAutoencoder(sparsity="kl", sparsity_weight=2.0, sparsity_target=0.1, **SMALL)
    assert kl.code_penalty(torch.full((8, 4), 0.1))["sparsity_penalty"].item() == pytest.approx(0, abs=1e-6)
    expected = 4 * (0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5))  # four units at mean activation 0.5
    assert kl.code_penalty(torch.full((8, 4), 0.5))["sparsity_penalty"].item() == pytest.approx(2 * expected, rel=1e-5)
    l1 = SparseAutoencoder(sparsity="l1", sparsity_weight=0.5, **SMALL)
    assert l1.code_activation == "relu"
    assert l1.code_penalty(torch.tensor([[1.0, 0, 2, 0], [0, 0, 0, 3]]))["sparsity_penalty"].item() == pytest.approx(1.5)


def test_hoyer_sparsity_bounds():
    assert hoyer_sparsity(torch.tensor([[0.0, 0, 5, 0], [1.0, 1, 1, 1]])).tolist() == pytest.approx([1.0, 0.0])


def test_vae_samples_are_probabilities_and_reproducible():
    model = VAE(latent_size=3, hidden_sizes=[16])
    torch.manual_seed(7)
    first = model.sample(5)
    torch.manual_seed(7)
    assert torch.equal(first, model.sample(5))
    assert first.shape == (5, 1, 28, 28) and first.min() > 0 and first.max() < 1


def test_importance_sampled_likelihood_matches_numerical_integration():
    # With a 1-D latent, log p(x) = log integral N(z; 0, 1) p(x|z) dz can be computed on a fine grid.
    torch.manual_seed(0)
    model = VAE(latent_size=1, hidden_sizes=[8]).eval()
    x = (torch.rand(2, 1, 28, 28) < 0.2).float()
    z = torch.linspace(-10, 10, 20001).unsqueeze(1)  # (G, 1)
    with torch.no_grad():
        logits = model.net.decode(z).flatten(1)  # (G, 784)
        log_prior = -0.5 * (z.squeeze(1) ** 2 + math.log(2 * math.pi))
        exact = []
        for image in x.flatten(1):
            log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, image.expand_as(logits), reduction="none").sum(1)
            exact.append(torch.logsumexp(log_prior + log_px_z, 0) + math.log(z[1, 0] - z[0, 0]))
    estimate = model.log_likelihood(x, 2000, torch.Generator().manual_seed(0))
    # Within 0.2 nats (out of ~590); a wrong term (prior, q density, the -log k) would be off by nats.
    assert estimate.tolist() == pytest.approx(torch.stack(exact).tolist(), abs=0.2)
    # The ELBO is a lower bound: the negative ELBO is above the negative log-likelihood.
    nelbo = model.loss_terms(x, x, "test", torch.Generator().manual_seed(0))["nelbo"].item()
    assert nelbo > -torch.stack(exact).mean().item()


def test_vae_sample_takes_a_generator_and_refuses_labels():
    model = VAE(latent_size=3, hidden_sizes=[16])
    torch.manual_seed(7)
    expected = model.sample(4)
    assert torch.equal(model.sample(4, generator=torch.Generator().manual_seed(7)), expected)
    with pytest.raises(ValueError, match="VAE is unconditional"):
        model.sample(4, labels=3)


def test_iwae_training_bound_is_the_importance_sampled_likelihood_with_k_samples():
    # The IWAE loss with k samples and the test-time estimate -log p(x) with k samples are the same
    # estimator: with the same noise they must agree, and with k = 1 the loss is the negative ELBO.
    torch.manual_seed(0)
    x = (torch.rand(6, 1, 28, 28) < 0.3).float()
    model = VAE(latent_size=4, hidden_sizes=[16], iwae_samples=8).eval()
    terms = model.loss_terms(x, x, "test", torch.Generator().manual_seed(3))
    estimate = model.log_likelihood(x, 8, torch.Generator().manual_seed(3))
    assert terms["loss"].item() == pytest.approx(-estimate.mean().item(), rel=1e-5)
    assert terms["iwae_bound"] is terms["loss"]
    # Tighter than the ELBO of the same model (on average over images; here by nats, untrained).
    assert terms["loss"].item() < terms["nelbo"].item()
    elbo_model = VAE(latent_size=4, hidden_sizes=[16], iwae_samples=1).eval()
    elbo_model.load_state_dict(model.state_dict())
    single = elbo_model.loss_terms(x, x, "test", torch.Generator().manual_seed(3))
    assert single["loss"] is single["nelbo"] and "iwae_bound" not in single


CONDITIONAL = dict(latent_size=4, hidden_sizes=[16], num_classes=10, class_names=[f"digit {d}" for d in range(10)])


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_conditional_vae_samples_follow_the_labels_given_as_ints_or_names(architecture):
    torch.manual_seed(0)
    model = VAE(architecture=architecture, channels=[4, 4], **CONDITIONAL).eval()
    z = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    expected = model.decode(z, torch.tensor([7, 7, 2, 0]))
    noise = lambda: torch.Generator().manual_seed(1)  # noqa: E731  (the same z as above)
    assert torch.equal(model.sample(4, labels=[7, 7, 2, 0], generator=noise()), expected)
    assert torch.equal(model.sample(4, labels=["digit 7", "digit 7", "digit 2", "digit 0"], generator=noise()), expected)
    assert torch.equal(model.sample(4, labels="digit 7", generator=noise()), model.decode(z, torch.full((4,), 7)))
    # Without labels it cycles through its classes; the class changes the image.
    assert torch.equal(model.sample(4, generator=noise()), model.decode(z, torch.arange(4)))
    assert not torch.equal(model.decode(z, torch.zeros(4, dtype=torch.long)), model.decode(z, torch.ones(4, dtype=torch.long)))
    # The encoder reads the class too, and forward decodes the posterior mean with the same class.
    x = torch.rand(4, 1, 28, 28)
    labels = torch.tensor([1, 2, 3, 4])
    assert not torch.equal(model.encode(x, labels)[0], model.encode(x, labels.flip(0))[0])
    assert torch.equal(model(x, labels), model.decode(model.encode(x, labels)[0], labels))


def test_conditional_vae_asks_for_the_labels_it_needs():
    model = VAE(**CONDITIONAL)
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"this VAE is conditional: pass the class of each sample, e.g. "
                                         r"model.encode\(x, labels\) with labels of shape \(2,\) in \[0, 9\]"):
        model(x)
    with pytest.raises(ValueError, match=r"model.decode\(z, labels\)"):
        model.decode(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\], got \[0, 12\]"):
        model(x, torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="label 'seven' is not a class of VAE"):
        model.sample(2, labels="seven")
    with pytest.raises(ValueError, match="this VAE is unconditional: call it without labels"):
        VAE(latent_size=4, hidden_sizes=[16])(x, torch.tensor([0, 1]))
    # Training: a batch without labels, and labels out of range, are named.
    with pytest.raises(ValueError, match=r"VAE is class-conditional: it trains on \(images, labels\) batches"):
        model.training_step(x, 0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\], got \[3, 10\]"):
        model.training_step((x, torch.tensor([3, 10])), 0)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        VAE(num_classes=1)
    with pytest.raises(ValueError, match="class_names must name each of the num_classes=3 classes"):
        VAE(num_classes=3, class_names=["a", "b"])


def test_conditional_iwae_bound_is_the_conditional_likelihood_estimate():
    # The same estimator as for the unconditional VAE, of log p(x|y): the training loss with the
    # batch's labels equals -log_likelihood(x, k, labels=y) for the same noise.
    torch.manual_seed(0)
    x = (torch.rand(6, 1, 28, 28) < 0.3).float()
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    model = VAE(latent_size=4, hidden_sizes=[16], iwae_samples=8, num_classes=10).eval()
    terms = model.loss_terms(x, x, "test", torch.Generator().manual_seed(3), labels)
    estimate = model.log_likelihood(x, 8, torch.Generator().manual_seed(3), labels=labels)
    assert terms["loss"].item() == pytest.approx(-estimate.mean().item(), rel=1e-5)
    other = model.log_likelihood(x, 8, torch.Generator().manual_seed(3), labels=labels.flip(0))
    assert not torch.equal(estimate, other)  # the labels enter the likelihood


def test_the_unconditional_vae_networks_keep_their_parameter_names_and_sizes():
    # Weights saved before class conditioning existed must still load.
    shapes = {k: tuple(v.shape) for k, v in VAE(latent_size=4, hidden_sizes=[16]).state_dict().items()}
    assert shapes == {"net.encoder.features.1.weight": (16, 784), "net.encoder.features.1.bias": (16,),
                      "net.encoder.head.weight": (8, 16), "net.encoder.head.bias": (8,),
                      "net.decoder.features.1.weight": (16, 4), "net.decoder.features.1.bias": (16,),
                      "net.decoder.head.weight": (784, 16), "net.decoder.head.bias": (784,)}
    conditional = VAE(latent_size=4, hidden_sizes=[16], num_classes=10).state_dict()
    assert conditional["net.encoder.features.1.weight"].shape == (16, 794)  # pixels and the one-hot class
    assert conditional["net.decoder.features.1.weight"].shape == (16, 14)  # the code and the one-hot class


def test_vae_evaluation_is_reproducible():
    model = VAE(latent_size=3, hidden_sizes=[16], nll_samples=4).eval()
    x = torch.rand(8, 1, 28, 28)

    def evaluate():
        generator = torch.Generator().manual_seed(3)
        target, _ = model.prepare_batch(x, "test", generator)
        return model.loss_terms(target, target, "test", generator)["nelbo"], model.log_likelihood(target, 4, generator)

    first, again = evaluate(), evaluate()
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


# --- real MNIST ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(data_dir):
    """(train images, train labels, test images, test labels), floats in [0, 1]."""
    return evidence.load_mnist(str(data_dir))


def test_linear_autoencoder_matches_pca(mnist):
    result = evidence.linear_ae_vs_pca(mnist[0][:3000], mnist[2][:2000], code_size=8)
    assert result["ae_mse"] <= 1.05 * result["pca_mse"], result


def test_shipped_ae_reproduces_its_test_numbers(data_dir):
    from zoo.evaluate import evaluate_pretrained

    results = evaluate_pretrained("ae_mnist", data_dir=str(data_dir), accelerator="cpu")
    for key in ("test/mse", "test/psnr", "test/code_hoyer"):
        assert results[key]["measured"] == pytest.approx(results[key]["recorded"], abs=1e-3)
    assert results["test/mse"]["measured"] < 0.005


def test_denoising_autoencoder_gains_8db_at_noise_sigma_half(mnist):
    model = zoo.load_pretrained("dae_mnist")
    assert model.hparams.noise == "gaussian" and model.hparams.noise_level == 0.5
    result = evidence.denoising(mnist[2][:1000])
    assert result["noisy_psnr"] < 10
    assert result["denoised_psnr"] >= result["noisy_psnr"] + 8, result
    assert result["denoised_psnr"] > result["plain_psnr"] + 5, result  # the plain autoencoder does not denoise


def test_sparse_codes_are_sparser_than_plain_ones(mnist):
    result = evidence.sparsity(mnist[2][:2000])
    plain, sparse = result["ae_mnist"], result["sparse_ae_mnist"]
    assert plain["code_size"] == sparse["code_size"]
    assert sparse["hoyer"] >= plain["hoyer"] + 0.04, result
    assert sparse["near_zero"] >= plain["near_zero"] + 0.05, result
    assert sparse["mean"] < 0.15  # mean activation near the target rho = 0.05


def test_linear_classifier_on_frozen_codes_reaches_90_percent(mnist):
    assert evidence.linear_probe(*mnist) >= 0.90


def test_vae_likelihood_on_binarized_test_images(mnist):
    recorded = read_manifest()["vae_mnist"]["metrics"]
    assert recorded["test/nll"] <= 87.0 and recorded["test/nll"] <= recorded["test/nelbo"]
    result = evidence.vae_likelihood(mnist[2][:500], num_samples=100)
    assert result["nll"] <= result["nelbo"] and result["nll"] <= 100, result


def test_conditional_vae_likelihood_given_the_class(mnist):
    # -log p(x|y) is below -log p(x) (knowing the digit helps) by at most log 10 nats for a perfect
    # model; the recorded numbers, and a re-measure on 500 test images with k = 100.
    recorded = read_manifest()["cvae_mnist"]["metrics"]
    assert recorded["test/nll"] <= recorded["test/nelbo"] and recorded["test/nll"] < read_manifest()["vae_mnist"]["metrics"]["test/nll"]
    x, labels = mnist[2][:500], mnist[3][:500]
    given = evidence.vae_likelihood(x, num_samples=100, name="cvae_mnist", labels=labels)
    assert given["nll"] <= given["nelbo"] and given["nll"] <= 95, given
    wrong = evidence.vae_likelihood(x, num_samples=100, name="cvae_mnist", labels=(labels + 1) % 10)
    assert wrong["nll"] > given["nll"] + 20, (given, wrong)  # the class matters: a wrong one costs many nats


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vae_mnist", "cvae_mnist"])
def test_two_process_ddp_vae_fit(name, in_tmp, data_dir):
    sample_options = ["--model.init_args.test_samples", "200"] if name == "cvae_mnist" else []
    out = run_zoo(
        "fit", "--config", str(REPO / f"recipes/{name}.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2", "--model.init_args.nll_samples", "10", *sample_options,
        cwd=in_tmp, env={"ZOO_DATA_DIR": str(data_dir)},
    )
    assert out.count("Test results of the best checkpoint") == 1  # rank zero only
    line = next(l for l in out.splitlines() if l.startswith("Test results"))
    nll = float(line.split("test/nll = ")[1].split(",")[0])
    nelbo = float(line.split("test/nelbo = ")[1].split(",")[0])
    assert 0 < nll <= nelbo
    if name == "cvae_mnist":  # the samples of both ranks are judged together: a share in [0, 1]
        label_acc = float(line.split("test/label_acc = ")[1].split(",")[0])
        assert 0 <= label_acc <= 1 and "test/fid_lenet = " in line
    images = sorted(p.name for p in (in_tmp / "runs" / name / "version_0" / "images").iterdir())
    assert images == ["interpolation_epoch000.png", "reconstructions_epoch000.png", "samples_epoch000.png"]
