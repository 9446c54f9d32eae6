"""`zoo infer` on image files, as a user runs it: real MNIST test images written as PNGs."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from torchvision.datasets.mnist import read_image_file, read_label_file

import zoo
from tests.commands import zoo_command
from zoo.infer import InferenceError, image_files, save_png
from zoo.weights import read_manifest

ZOO = [sys.executable, "-m", "zoo.cli"]


def write_pngs(data_dir, folder, count=None):
    """MNIST test images as PNG files (half of them in a sub-folder), named by index; returns (x, y)."""
    x = read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[:count]
    y = read_label_file(str(data_dir / "MNIST/raw/t10k-labels-idx1-ubyte"))[:count]
    (folder / "more").mkdir(parents=True)
    for i, image in enumerate(x):
        Image.fromarray(image.numpy()).save(folder / ("more" if i % 2 else "") / f"{i:05d}.png")
    return x, y


def infer(*args, cwd):
    return zoo_command("infer", *args, cwd=cwd)


@pytest.mark.slow
def test_predictions_on_png_files_are_the_models_and_reach_the_manifests_accuracy(data_dir, tmp_path):
    x, y = write_pngs(data_dir, tmp_path / "digits")
    # plain: the files' pixels as they are, so the predictions are exactly the model's on the tensors
    result = infer("lenet5_mnist", "digits", "--output", "preds.csv", "--preprocess", "plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "10000 predictions written to preds.csv"
    with open(tmp_path / "preds.csv") as f:
        rows = {int(r["path"].rsplit("/", 1)[1][:5]): r for r in csv.DictReader(f)}
    assert sorted(rows) == list(range(10000))
    model = zoo.load_pretrained("lenet5_mnist")
    with torch.no_grad():
        probabilities = torch.cat([model(x[i:i + 1000, None].float() / 255).softmax(1) for i in range(0, 10000, 1000)])
    predicted = [int(rows[i]["class"]) for i in range(10000)]
    assert predicted == probabilities.argmax(1).tolist()  # what the model says on the tensors
    shown = torch.tensor([float(rows[i]["probability"]) for i in range(10000)])
    assert torch.allclose(shown, probabilities.max(1).values, atol=1e-5)
    assert [rows[0][f"top{k}_class"] for k in range(1, 6)][0] == rows[0]["class"]
    accuracy = (torch.tensor(predicted) == y).float().mean().item()
    assert accuracy == pytest.approx(read_manifest()["lenet5_mnist"]["metrics"]["test/acc"], abs=1e-4)
    framed = infer("lenet5_mnist", "digits", "--output", "framed.csv", cwd=tmp_path)  # the default: framed as MNIST
    assert framed.returncode == 0, framed.stderr[-2000:]
    with open(tmp_path / "framed.csv") as f:
        framed_rows = {int(r["path"].rsplit("/", 1)[1][:5]): int(r["class"]) for r in csv.DictReader(f)}
    assert (torch.tensor([framed_rows[i] for i in range(10000)]) == y).float().mean().item() >= 0.993


def test_table_json_and_top_k(data_dir, tmp_path):
    write_pngs(data_dir, tmp_path / "digits", count=6)
    table = infer("lenet5_mnist", "digits/00000.png", "digits/more", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["image", "class", "prob", "next"] and len(lines) == 1 + 4  # 1 file + 3 in more/
    assert lines[1].split()[:2] == ["digits/00000.png", "7"]  # MNIST's first test image is a 7
    result = infer("lenet5_mnist", "digits", "--output", "out/preds.json", "--top_k", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "out/preds.json").read_text())
    assert len(records) == 6 and all(len(r["top_k"]) == 3 for r in records)
    assert records[0]["top_k"][0] == {"class": records[0]["class"], "probability": records[0]["probability"]}
    assert sum(p["probability"] for p in records[0]["top_k"]) <= 1 + 1e-6


def test_python_api_names_the_classes_of_other_weights(data_dir, tmp_path):
    write_pngs(data_dir, tmp_path / "digits", count=4)
    rows, skipped = zoo.predict_files("alexnet_fashionmnist", [tmp_path / "digits"], top_k=2)
    fashion = zoo.load_pretrained("alexnet_fashionmnist").class_names
    assert len(rows) == 4 and not skipped and all(r["class"] in fashion for r in rows)


def test_bad_images_and_arguments_are_named(data_dir, tmp_path):
    write_pngs(data_dir, tmp_path / "digits", count=2)
    (tmp_path / "digits/broken.png").write_bytes(b"not an image")
    (tmp_path / "empty").mkdir()
    stopped = infer("lenet5_mnist", "digits", cwd=tmp_path)
    assert stopped.returncode == 2 and "digits/broken.png" in stopped.stderr and "--skip_bad" in stopped.stderr
    skipped = infer("lenet5_mnist", "digits", "--skip_bad", cwd=tmp_path)
    assert skipped.returncode == 0 and "skipped digits/broken.png" in skipped.stderr
    assert len(skipped.stdout.splitlines()) == 1 + 2
    for args, message in [(["empty"], "folder empty holds no images"),
                          (["nowhere.png"], "nowhere.png: no such file or folder"),
                          (["--output", "preds.txt", "digits/00000.png"], "name a .csv or .json file")]:
        result = infer("lenet5_mnist", *args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    no_folder = infer("ae_mnist", "digits/00000.png", cwd=tmp_path)
    assert no_folder.returncode == 2 and "name a folder for its reconstructions with --output DIR" in no_folder.stderr
    noise = infer("gan_mnist", "digits/00000.png", cwd=tmp_path)
    assert noise.returncode == 2 and "zoo sample gan_mnist N --output DIR" in noise.stderr
    images = zoo_command("sample", "lenet5_mnist", "2", "--output", "x", cwd=tmp_path)
    assert images.returncode == 2 and "draws images from a VAE or a GAN: LeNet5 is not one" in images.stderr
    unknown = infer("no_such_weights", "digits/00000.png", cwd=tmp_path)
    assert unknown.returncode == 2 and "lenet5_mnist" in unknown.stderr  # the error lists the shipped names
    with pytest.raises(InferenceError, match="no images given"):
        image_files([])


def read_png(path):
    from torchvision.transforms.functional import pil_to_tensor

    with Image.open(path) as image:
        return pil_to_tensor(image)[0].float().div(255)  # (H, W) in [0, 1]


@pytest.mark.parametrize("name", ["ae_mnist", "vae_mnist"])
def test_autoencoder_reconstructions_are_the_models(name, data_dir, tmp_path):
    x, _ = write_pngs(data_dir, tmp_path / "digits", count=4)
    result = infer(name, "digits", "--output", "recon", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "4 reconstructions written to recon", result.stderr
    written = sorted(str(p.relative_to(tmp_path / "recon")) for p in (tmp_path / "recon").rglob("*.png"))
    assert written == ["00000.png", "00002.png", "more/00001.png", "more/00003.png"]  # the inputs' layout
    model = zoo.load_pretrained(name)
    with torch.no_grad():
        expected = model(x[:, None].float() / 255)[:, 0]
    for i in range(4):
        png = tmp_path / "recon" / ("more" if i % 2 else "") / f"{i:05d}.png"
        assert (read_png(png) - expected[i]).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only


@pytest.mark.parametrize("name", ["vae_mnist", "gan_mnist"])
def test_samples_are_the_models_and_fixed_by_the_seed(name, tmp_path):
    for folder, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        result = zoo_command("sample", name, "3", "--output", folder, "--seed", seed, cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.strip() == f"3 samples written to {folder}", result.stderr
    files = [f"sample_{i:04d}.png" for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == files
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)
    model = zoo.load_pretrained(name)
    torch.manual_seed(3)
    expected = model.sample(3)[:, 0]
    for i, f in enumerate(files):
        assert (read_png(tmp_path / "a" / f) - expected[i]).abs().max() <= 0.5 / 255 + 1e-6


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(data_dir, tmp_path):
    import os
    import pty

    write_pngs(data_dir, tmp_path / "digits", count=600)
    leader, follower = pty.openpty()  # stderr is a terminal, as in a user's shell
    process = subprocess.Popen([*ZOO, "infer", "lenet5_mnist", "digits", "--batch_size", "100", "--output", "p.csv"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower, text=True,
                               env={**os.environ, "COLUMNS": "100"})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=600) == 0
    assert process.stdout.read().strip() == "600 predictions written to p.csv"
    assert b"predicting" in shown and b"100%" in shown
    piped = infer("lenet5_mnist", "digits", "--output", "q.csv", cwd=tmp_path)
    assert piped.returncode == 0 and piped.stderr.startswith("zoo infer: images framed as MNIST")  # one line, no bar
    assert piped.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_sample_draws_the_label_asked_for_from_a_conditional_generator(kind, tmp_path):
    from zoo.models import GAN, VAE

    torch.manual_seed(0)
    names = [str(d) for d in range(10)]
    conditional = (GAN(arch="dcgan", latent_dim=8, channels=4, num_classes=10, class_names=names) if kind == "gan"
                   else VAE(latent_size=4, hidden_sizes=[16], num_classes=10, class_names=names))
    conditional.save_pretrained(tmp_path / "cgan")
    for folder, label in (("seven", "7"), ("cycled", None)):
        extra = ["--label", label] if label else []
        result = zoo_command("sample", "cgan", "3", "--output", folder, *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    model = zoo.load_pretrained(str(tmp_path / "cgan"))
    for folder, labels in (("seven", 7), ("cycled", None)):
        expected = model.sample(3, labels=labels, generator=torch.Generator().manual_seed(0))[:, 0]
        for i in range(3):
            assert (read_png(tmp_path / folder / f"sample_{i:04d}.png") - expected[i]).abs().max() <= 0.5 / 255 + 1e-6
    for weights, label, message in (("cgan", "12", f"label 12 is not a class of {type(conditional).__name__}"),
                                    ("gan_mnist", "7", "is unconditional: it draws images without a label")):
        result = zoo_command("sample", weights, "2", "--output", "bad", "--label", label, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "bad").exists()
    if kind == "vae":  # reconstructing needs each image's class, which image files do not carry
        (tmp_path / "digits").mkdir()
        save_png(torch.rand(1, 28, 28), tmp_path / "digits" / "a.png")
        result = infer("cgan", "digits", "--output", "recon", cwd=tmp_path)
        assert result.returncode == 2 and "is class-conditional: it reconstructs an image given its class" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "recon").exists()
