"""`zoo export`: every shipped weight as ONNX and torch.export files that compute what the model does."""

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

import zoo
import zoo.models
from tests.commands import zoo_command
from zoo import export
from zoo.export import ExportError, ExportMismatch, export_weights, read_metadata
from zoo.weights import read_manifest

pytestmark = pytest.mark.compat  # ONNX and torch.export

ZOO = [sys.executable, "-m", "zoo.cli"]
SHIPPED = sorted(read_manifest())
TARGETS = [(name, "model") for name in SHIPPED] + [("vae_mnist", "decoder")]


def run_exported(path, inputs):
    """Outputs of an exported file for the tuple ``inputs``, computed by the file's own runtime, not by export_weights."""
    if path.suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feed)[0])
    with torch.no_grad():
        return torch.export.load(str(path)).module()(*inputs)


def fresh_input(model, part, batch, file=True):
    """A tuple of inputs: (x,), or (x, labels) for a class-conditional GAN or VAE; ``file``: those of the exported
    file, whose noise for a GAN with a noise mixture has one column more (else those of ``model.forward``)."""
    from zoo.models import GAN, VAE

    generator = torch.Generator().manual_seed(1234)
    if part == "decoder":
        x = torch.randn(batch, model.hparams.latent_size, generator=generator)
    elif isinstance(model, GAN):
        x = torch.randn(batch, *model.input_shape, generator=generator)
        if file and model.hparams.get("noise_components"):  # the file draws from the mixture: one uniform column more
            x = torch.cat([x, torch.rand(batch, 1, generator=generator)], dim=1)
    else:
        x = torch.rand(batch, *model.input_shape, generator=generator)
    num_classes = model.hparams.get("num_classes") if isinstance(model, (GAN, VAE)) else None
    return (x,) if num_classes is None else (x, torch.randint(num_classes, (batch,), generator=generator))


@pytest.mark.parametrize("format", ["onnx", "torch.export"])
@pytest.mark.parametrize("name, part", TARGETS, ids=[f"{n}-{p}" for n, p in TARGETS])
def test_every_shipped_weight_exports_and_matches_the_model(name, part, format, tmp_path):
    if format == "onnx" and name == "lstm_mnist" and export._torch_older_than(export.RECURRENT_ONNX_TORCH):
        with pytest.raises(ExportError, match=r"needs torch >= 2.14 .* use --format torch.export"):
            export_weights(name, format=format, output=tmp_path / "lstm.onnx")
        return
    result = export_weights(name, format=format, output=tmp_path / f"{name}{export.FORMATS[format]}", part=part)
    assert sorted(result.max_abs_diff) == [1, 7]
    assert max(result.max_abs_diff.values()) <= 1e-4
    model = zoo.load_pretrained(name)
    # A batch size the export never saw, run by the file's runtime: the batch is dynamic and the numbers are the model's.
    x = fresh_input(model, part, 13)
    with torch.no_grad():
        if part == "decoder":
            expected = model.decode(*x)
        elif model.hparams.get("noise_components"):  # gan_mnist: the noise mixture's draw, then the generator
            expected = model(model._mixture(x[0][:, :-1], x[0][:, -1]), *x[1:])
        else:
            expected = model(*x)
    got = run_exported(result.path, x)
    assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4
    metadata = read_metadata(result.path)
    assert metadata == result.metadata
    assert metadata["weights"] == name and metadata["sha256"] == read_manifest()[name]["sha256"]
    assert metadata["class_names"] == getattr(model, "class_names", None)
    assert metadata["part"] == part and metadata["input"] and metadata["output"]
    assert [p.name for p in tmp_path.iterdir()] == [result.path.name]  # no temporary file left behind


@pytest.mark.parametrize("name", SHIPPED)
def test_torch_export_works_directly_on_every_model(name):
    model = zoo.load_pretrained(name)
    x = fresh_input(model, "model", 4, file=False)
    program = torch.export.export(model, x)  # input validation stays out of the graph
    with torch.no_grad():
        assert torch.equal(program.module()(*x), model(*x))
    with pytest.raises(ValueError, match="expects input of shape"):  # and keeps its message in eager mode
        model(x[0][..., :-1], *x[1:])


def test_exported_lenet5_reaches_the_manifests_accuracy_on_the_real_test_split(data_dir, tmp_path):
    path = export_weights("lenet5_mnist", output=tmp_path / "lenet5.onnx").path
    x = read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[:, None].float() / 255
    y = read_label_file(str(data_dir / "MNIST/raw/t10k-labels-idx1-ubyte"))
    predicted = run_exported(path, (x,)).argmax(1)
    assert (predicted == y).float().mean().item() == pytest.approx(read_manifest()["lenet5_mnist"]["metrics"]["test/acc"], abs=1e-4)


@pytest.mark.parametrize("format", ["onnx", "torch.export"])
def test_a_conditional_generator_exports_with_noise_and_labels_inputs(format, tmp_path):
    torch.manual_seed(0)
    model = zoo.models.GAN(arch="dcgan", latent_dim=8, channels=4, num_classes=10, spectral_norm=True,
                           ema_decay=0.9, loss="hinge").eval()
    result = export_weights(model, format=format, output=tmp_path / f"cgan{export.FORMATS[format]}")
    assert "int64 labels (N,)" in result.metadata["input"]
    if format == "onnx":
        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["noise", "labels"]
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(9))
    for digit in (0, 7):
        labels = torch.full((5,), digit)
        with torch.no_grad():
            assert (run_exported(result.path, (z, labels)) - model(z, labels)).abs().max() <= 1e-5


@pytest.mark.parametrize("format", ["onnx", "torch.export"])
def test_a_generator_with_a_noise_mixture_exports_the_mixture_too(format, tmp_path):
    """gan_mnist's layout: the file draws from the mixture itself, from N(0, I) noise and one uniform column."""
    torch.manual_seed(0)
    model = zoo.models.GAN(arch="decoder", latent_dim=4, generator_hidden=[16], discriminator_hidden=[16],
                           noise_components=3).eval()
    model.noise_weights.copy_(torch.tensor([0.2, 0.3, 0.5]))
    model.noise_means.copy_(torch.randn(3, 4) * 3)
    model.noise_scale_tril.copy_(torch.linalg.cholesky(torch.eye(4) + 0.5 * torch.ones(4, 4)).expand(3, 4, 4))
    result = export_weights(model, format=format, output=tmp_path / f"gan{export.FORMATS[format]}")
    assert result.metadata["input"] == ("float32 noise (N, 5): columns 0-3 drawn from N(0, I), column 4 uniform in "
                                        "[0, 1), which picks the component of the GAN's noise mixture")
    generator = torch.Generator().manual_seed(3)
    eps, choice = torch.randn(7, 4, generator=generator), torch.rand(7, generator=generator)
    with torch.no_grad():
        expected = model(model._mixture(eps, choice))
        assert (run_exported(result.path, (torch.cat([eps, choice[:, None]], 1),)) - expected).abs().max() <= 1e-5
        # what sample() draws with the same generator state is the same image
        assert torch.equal(model.sample(7, generator=torch.Generator().manual_seed(3)), expected)


@pytest.mark.parametrize("format", ["onnx", "torch.export"])
@pytest.mark.parametrize("part", ["model", "decoder"])
def test_a_conditional_vae_exports_both_parts_with_a_labels_input(part, format, tmp_path):
    torch.manual_seed(0)
    model = zoo.models.VAE(latent_size=4, hidden_sizes=[16], num_classes=10).eval()
    result = export_weights(model, format=format, output=tmp_path / f"cvae{export.FORMATS[format]}", part=part)
    assert "int64 labels (N,)" in result.metadata["input"]
    assert result.metadata["input_names"] == ["input" if part == "model" else "noise", "labels"]
    if format == "onnx":
        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == result.metadata["input_names"]
    x = fresh_input(model, part, 5)
    with torch.no_grad():
        expected = model(*x) if part == "model" else model.decode(*x)
        other = model(x[0], 9 - x[1]) if part == "model" else model.decode(x[0], 9 - x[1])
    got = run_exported(result.path, x)
    assert (got - expected).abs().max() <= 1e-5 and (got - other).abs().max() > 1e-3  # the labels matter


def test_the_command_with_no_options_writes_a_checked_onnx_file_into_the_current_folder(tmp_path):
    result = subprocess.run([*ZOO, "export", "lenet5_mnist"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5_mnist.onnx"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("wrote lenet5_mnist.onnx (onnx); max |exported - model| batch 1: ")
    assert lines[1].startswith("input:  float32 grayscale images (N, 1, 28, 28) with values in [0, 1]")
    assert lines[2] == "output: logits (N, 10): softmax gives the class probabilities"
    assert result.stderr == ""  # nothing from the exporters reaches the user
    result = subprocess.run([*ZOO, "export", "lenet5_mnist", "--format", "torch.export"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == "" and (tmp_path / "lenet5_mnist.pt2").is_file()


def test_a_fixed_batch_file_takes_only_batches_of_one(tmp_path):
    result = export_weights("mlp_mnist", output=tmp_path / "mlp.onnx", dynamic_batch=False)
    assert list(result.max_abs_diff) == [1]
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 1, 28, 28]
    assert "(1, 1, 28, 28)" in result.metadata["input"]
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {session.get_inputs()[0].name: np.zeros((2, 1, 28, 28), np.float32)})


def test_a_file_outside_the_tolerance_is_refused_and_not_written(tmp_path):
    with pytest.raises(ExportMismatch, match="differs from the model by up to"):
        export_weights("lenet5_mnist", output=tmp_path / "x.onnx", tolerance=0.0)  # ONNX Runtime rounds differently
    assert list(tmp_path.iterdir()) == []
    result = zoo_command("export", "lenet5_mnist", "--output", "x.onnx", "--tolerance", "0", cwd=tmp_path)
    assert result.returncode == 1 and "nothing was written" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["lenet5_mnist", "--part", "decoder"], "LeNet5 has no decoder to export"),
    (["no_such_weights"], "no shipped weights named 'no_such_weights'"),
    (["lenet5_mnist", "--output", "."], "is a folder: name the file to write"),
])
def test_bad_requests_get_one_line_errors(args, message, tmp_path):
    result = zoo_command("export", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.splitlines()[1:] == ["See 'zoo export --help'."] and list(tmp_path.iterdir()) == []


def test_a_missing_onnx_install_names_the_extra(monkeypatch, tmp_path):
    real = export._importable
    monkeypatch.setattr(export, "_importable", lambda package: package != "onnxruntime" and real(package))
    with pytest.raises(ExportError, match=r'\(onnxruntime not installed\): pip install "lightning-zoo\[export\]"'):
        export_weights("lenet5_mnist", output=tmp_path / "x.onnx")
    assert export_weights("lenet5_mnist", format="torch.export", output=tmp_path / "x.pt2").path.exists()
