"""The GAN: sampling contract, optimiser schedule, validation of arguments, and a real 2-process DDP fit."""

import csv

import lightning as L
import pytest
import torch

import zoo
from tests.conftest import REPO
from tests.fakes import RandomImages, quiet_trainer
from tests.test_cli import run_zoo

TINY = {
    "mlp": dict(arch="mlp", latent_dim=8, generator_hidden=[32], discriminator_hidden=[32], val_samples=32, test_samples=32),
    "dcgan": dict(arch="dcgan", latent_dim=8, channels=4, val_samples=32, test_samples=32),
}


@pytest.fixture(params=sorted(TINY))
def gan(request):
    torch.manual_seed(0)
    return zoo.create_model("gan", **TINY[request.param])


def test_samples_are_images_in_unit_range_and_reproducible(gan):
    images = gan.sample(10)
    assert images.shape == (10, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    torch.manual_seed(5)
    first = gan.sample(6)
    torch.manual_seed(5)
    assert torch.equal(first, gan.sample(6))
    assert torch.equal(gan.sample(6, generator=torch.Generator().manual_seed(1)),
                       gan.sample(6, generator=torch.Generator().manual_seed(1)))
    assert gan.training, "sample() must restore the training mode"


def test_fixed_noise_is_the_same_for_every_instance_and_not_saved(gan):
    other = zoo.create_model("gan", **{**dict(gan.hparams)})
    assert torch.equal(gan.fixed_noise, other.fixed_noise)
    assert gan.fixed_samples().shape == (64, 1, 28, 28)
    assert "fixed_noise" not in gan.state_dict()


def test_saved_generator_samples_identically(gan, tmp_path):
    gan.save_pretrained(tmp_path / "gan")
    loaded = zoo.load_pretrained(str(tmp_path / "gan"))
    torch.manual_seed(0)
    expected = gan.sample(8)
    torch.manual_seed(0)
    assert torch.equal(expected, loaded.sample(8))


def test_forward_names_the_expected_noise_shape(gan):
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 8\), got \(2, 1, 28, 28\)"):
        gan(torch.rand(2, 1, 28, 28))


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="vae"), "arch must be 'mlp' or 'dcgan'"),
    (dict(d_steps=0), "d_steps must be >= 1, got 0"),
    (dict(g_steps=0), "g_steps must be >= 1, got 0"),
    (dict(label_smoothing=0.5), r"label_smoothing must be in \[0, 0.5\), got 0.5"),
    (dict(lr_generator=-1.0), "lr must be > 0, got -1"),
    (dict(test_samples=1), "test_samples must be >= 2"),
    (dict(beta1=1.0), r"beta1 must be in \[0, 1\)"),
])
def test_bad_arguments_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_model("gan", **kwargs)


class CountSteps(L.Callback):
    """Counts optimizer.step() calls of the generator and discriminator optimisers."""

    def __init__(self):
        self.counts = [0, 0]

    def on_train_start(self, trainer, pl_module):
        for index, optimizer in enumerate(trainer.optimizers):
            optimizer.register_step_post_hook(lambda *_, i=index: self.counts.__setitem__(i, self.counts[i] + 1))


@pytest.mark.parametrize("d_steps, g_steps", [(1, 1), (3, 1), (1, 2)])
def test_both_optimisers_step_as_configured(d_steps, g_steps, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("gan", **TINY["mlp"], d_steps=d_steps, g_steps=g_steps)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    counter = CountSteps()
    quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0,
                  callbacks=[counter]).fit(model, datamodule=RandomImages())
    assert counter.counts == [3 * g_steps, 3 * d_steps]  # [generator, discriminator]
    for prefix in ("generator.", "discriminator."):
        changed = [n for n, p in model.named_parameters() if n.startswith(prefix) and not torch.equal(p, before[n])]
        assert changed, f"no {prefix[:-1]} weight changed"


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_label_smoothing_lowers_the_real_target(smoothing):
    torch.manual_seed(0)
    model = zoo.create_model("gan", **TINY["mlp"], label_smoothing=smoothing)
    torch.nn.init.zeros_(model.discriminator.net[-1].weight)
    torch.nn.init.constant_(model.discriminator.net[-1].bias, 1.0)  # D outputs logit b = 1 for every image
    loss, d_real, d_fake = model._discriminator_loss(torch.rand(4, 1, 28, 28))
    # BCE-with-logits(b, t) = softplus(b) - t * b: real target t = 1 - smoothing, fake target 0.
    softplus = torch.nn.functional.softplus(torch.tensor(1.0)).item()
    assert loss.item() == pytest.approx(2 * softplus - (1 - smoothing), rel=1e-6)
    assert d_real.item() == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item())


@pytest.mark.slow
@pytest.mark.parametrize("recipe, tiny", [
    ("gan_mnist_mlp", ["--model.init_args.generator_hidden", "[16, 32]", "--model.init_args.discriminator_hidden", "[32]"]),
    ("gan_mnist_dcgan", ["--model.init_args.channels", "4"]),
])
def test_two_process_ddp_fit_and_test(recipe, tiny, data_dir, in_tmp):
    out = run_zoo(
        "fit", "--config", str(REPO / f"recipes/{recipe}.yaml"), *tiny,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2", "--trainer.num_sanity_val_steps", "0", "--model.init_args.d_steps", "2",
        "--model.init_args.val_samples", "64", "--model.init_args.test_samples", "64",
        cwd=in_tmp, env={"ZOO_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"},
    )
    assert out.count("Test results of the best checkpoint") == 1  # rank zero only
    assert "test/fid_lenet" in out and "test/coverage_min" in out
    versions = list((in_tmp / "runs" / recipe).iterdir())
    assert [v.name for v in versions] == ["version_0"]
    with open(versions[0] / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("val/fid_lenet")}
    assert epochs == {"0", "1"}
    # The recipe's SampleImages callback drew on rank zero only, once per epoch.
    assert sorted(p.name for p in (versions[0] / "images").iterdir()) == ["samples_epoch000.png", "samples_epoch001.png"]


@pytest.mark.slow
def test_shipped_gan_mnist_remeasures_to_its_manifest_numbers(data_dir):
    from zoo.evaluate import evaluate_pretrained

    if "gan_mnist" not in zoo.list_pretrained():
        pytest.fail("weights/manifest.json has no gan_mnist entry; publish it with recipes/gan_mnist_mlp.yaml")
    results = evaluate_pretrained("gan_mnist", data_dir=str(data_dir), accelerator="cpu")
    assert set(results) == {"test/fid_lenet", "test/coverage_min", "test/coverage_max"}
    for key, pair in results.items():
        assert pair["measured"] == pytest.approx(pair["recorded"], abs=1e-3), key
    # Mode coverage target: every digit between 5 % and 15 % of 10,000 samples, as lenet5_mnist sees them.
    assert results["test/coverage_min"]["measured"] >= 0.05 and results["test/coverage_max"]["measured"] <= 0.15
