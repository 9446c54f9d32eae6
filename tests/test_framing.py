"""Image files brought into the format the weights were trained on (zoo.data.framing), the contract that
travels with the weights (input_framing), and `zoo infer` on scans and printed digits."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import zoo
from tests.commands import zoo_command
from zoo.data.framing import FRAMINGS, FramingError, chosen_framing, frame_image
from zoo.weights import read_manifest, sha256_of, shipped_weights_dir

pytestmark = pytest.mark.compat  # image files as Pillow, scipy and torch read and resize them

MNIST = FRAMINGS["mnist"]
ZOO = [sys.executable, "-m", "zoo.cli"]


def seven(side=100, top=10, left=15, height=40, width=24):
    """A light '7' (two bars) on black: (side, side) uint8; the bars' box is (height, width) at (top, left)."""
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, left + width - 1, top + 5], fill=255)  # the top bar
    draw.line([left + width - 3, top + 3, left + width // 3, top + height - 1], fill=255, width=6)  # the stem
    return np.array(image)


def box_and_mass(framed):
    """(height, width) of the nonzero pixels' box and the centre of mass (row, column) of a framed image."""
    x = framed.float()
    rows, cols = torch.nonzero(x.sum(1)).flatten(), torch.nonzero(x.sum(0)).flatten()
    index = torch.arange(x.shape[0], dtype=torch.float32)
    mass = ((x.sum(1) * index).sum() / x.sum(), (x.sum(0) * index).sum() / x.sum())
    return (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)), tuple(float(m) for m in mass)


def test_an_off_centre_small_digit_is_fitted_into_the_20x20_box_and_centred_by_mass():
    framed = frame_image(seven(), MNIST)
    assert framed.shape == (28, 28) and framed.dtype == torch.uint8
    (height, width), (row, col) = box_and_mass(framed)
    assert height == 20 and width == pytest.approx(20 * 24 / 40, abs=1)  # the longer side fills the box, aspect kept
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5  # MNIST's centre of mass: pixel 14 of 0..27
    assert framed.max() >= 250 and framed[0].max() == 0 and framed[:, 0].max() == 0  # bright strokes, black margin


def test_dark_ink_on_light_paper_is_inverted_whatever_the_lighting_noise_and_specks():
    clean = frame_image(seven(), MNIST)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:100, 0:100] / 99
    paper = 215 + 30 * x - 20 * y + rng.normal(0, 5, (100, 100))  # uneven lighting, grainy paper
    page = paper - seven().astype(float) / 255 * (paper - 40)  # dark ink where the 7 is
    page[85:87, 90:92] = 60  # a speck far from the digit
    buffer = io.BytesIO()
    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=75)
    scanned = frame_image(np.array(Image.open(buffer)), MNIST)
    assert box_and_mass(scanned)[0] == box_and_mass(clean)[0]  # the speck does not widen the box
    assert scanned[0].max() == 0 and scanned.max() >= 240  # black background, light ink
    assert (scanned.float() - clean.float()).abs().mean() < 10  # the same picture, up to the scan's blur


def test_an_image_already_framed_is_left_as_it_is():
    once = frame_image(seven(), MNIST)
    twice = frame_image(once, MNIST)
    assert (twice.int() - once.int()).abs().max() <= 2


def test_real_mnist_images_pass_through_essentially_unchanged(data_dir):
    from torchvision.datasets.mnist import read_image_file

    x = read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[:300]
    framed = torch.stack([frame_image(image, MNIST) for image in x])
    difference = (framed.int() - x.int()).abs()
    assert difference.float().mean() < 0.5  # of 255
    assert (difference.amax((1, 2)) <= 2).float().mean() >= 0.95  # a level's rounding or two: same box, same place
    model = zoo.load_pretrained("lenet5_mnist")
    with torch.no_grad():
        assert torch.equal(model(x[:, None].float() / 255).argmax(1), model(framed[:, None].float() / 255).argmax(1))


def test_a_blank_page_gives_a_black_field_and_bad_inputs_are_named():
    assert frame_image(np.full((50, 60), 230, dtype=np.uint8), MNIST).max() == 0
    with pytest.raises(ValueError, match=r"one grayscale image \(H, W\), got shape \(3, 28, 28\)"):
        frame_image(torch.zeros(3, 28, 28, dtype=torch.uint8), MNIST)
    with pytest.raises(ValueError, match="too small to frame"):
        frame_image(torch.zeros(2, 28, dtype=torch.uint8), MNIST)
    with pytest.raises(ValueError, match="Fashion-MNIST's framing is recorded .* not reproduced"):
        frame_image(seven(), FRAMINGS["fashion_mnist"])
    with pytest.raises(FramingError, match="preprocess must be one of auto, plain, mnist, got 'scan'"):
        chosen_framing("scan", "mnist")
    with pytest.raises(FramingError, match="unknown input framing 'cifar': known framings are mnist, fashion_mnist"):
        zoo.create_model("lenet5", input_framing="cifar")


def test_preprocess_follows_the_contract():
    assert chosen_framing("auto", "mnist") is MNIST
    assert chosen_framing("auto", None) is None  # weights that say nothing: the plain path
    assert chosen_framing("auto", "fashion_mnist") is None  # recorded, not reproduced
    assert chosen_framing("plain", "mnist") is None
    assert chosen_framing("mnist", None) is MNIST


# ----- the contract travels with the weights ------------------------------------------------------

def test_shipped_weights_carry_their_framing_and_their_files_are_unchanged():
    manifest = read_manifest()
    expected = {"lenet5_mnist": "mnist", "mlp_mnist": "mnist", "lstm_mnist": "mnist",
                "alexnet_fashionmnist": "fashion_mnist"}
    for name, framing in expected.items():
        assert zoo.load_pretrained(name).input_framing == framing, name
        assert sha256_of(shipped_weights_dir() / manifest[name]["file"]) == manifest[name]["sha256"]
        assert zoo.create_datamodule(manifest[name]["dataset"]).framing == framing  # what the training data says
    assert zoo.create_datamodule("digits").framing is None  # 8x8 digits upscaled and padded: not MNIST's framing


def test_a_fit_checkpoint_and_save_pretrained_carry_the_datamodules_framing(data_dir, tmp_path):
    import lightning as L

    from zoo.models import LeNet5
    from zoo.pretrained import transfer

    model = zoo.create_model("lenet5")
    assert model.input_framing is None
    trainer = L.Trainer(accelerator="cpu", fast_dev_run=True, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=zoo.create_datamodule("mnist", data_dir=str(data_dir), batch_size=64))
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    assert model.input_framing == "mnist"
    assert LeNet5.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True).input_framing == "mnist"
    saved = zoo.load_pretrained(model.save_pretrained(tmp_path / "saved"))
    assert saved.input_framing == "mnist"
    assert "Inputs: images as MNIST frames them" in (tmp_path / "saved" / "README.md").read_text()
    assert transfer("lenet5_mnist", num_classes=3).input_framing is None  # a new task's data decides


# ----- zoo infer -----------------------------------------------------------------------------------

FRAMED_LINE = ("zoo infer: images framed as MNIST (light on dark, 20x20 box in 28x28, centred by mass); "
               "--preprocess plain to turn off\n")


def test_zoo_infer_reads_scans_of_real_digits_and_says_what_it_did(data_dir, tmp_path):
    from benchmarks.scans import make_scans, read_mnist_test

    images, labels = read_mnist_test(data_dir)
    truth = make_scans(images[:6], labels[:6], tmp_path / "scans")
    result = subprocess.run([*ZOO, "infer", "lenet5_mnist", "scans"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stderr == FRAMED_LINE, result.stderr
    predicted = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert predicted == {f"scans/{path.name}": label for path, label in truth.items()}
    plain = zoo_command("infer", "lenet5_mnist", "scans", "--preprocess", "plain", cwd=tmp_path)
    assert plain.returncode == 0 and "resized and centre-cropped as they are" in plain.stderr, plain.stderr
    wrong = zoo_command("infer", "lenet5_mnist", "scans", "--preprocess", "scan", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr == ("zoo infer: error: preprocess must be one of auto, plain, mnist, "
                                                      "got 'scan'\n"), wrong.stderr


def test_preprocess_plain_keeps_the_old_path(tmp_path):
    from zoo.data.folder import read_image

    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(3):
        Image.fromarray(255 - seven(side=64 + 16 * i, top=5 * i)).save(pages / f"{i}.jpg")
    model = zoo.load_pretrained("lenet5_mnist")
    rows, _ = zoo.predict_files(model, [pages], top_k=10, preprocess="plain")
    x = torch.stack([read_image(pages / f"{i}.jpg", 1, 28) for i in range(3)]).float() / 255  # (3, 1, 28, 28)
    with torch.no_grad():
        probabilities = model(x).softmax(1)
    for row, p in zip(rows, probabilities):
        assert row["probability"] == pytest.approx(float(p.max()), abs=1e-6)
    framed, _ = zoo.predict_files(model, [pages], preprocess="auto")
    assert [row["class"] for row in framed] == ["7"] * 3


def test_the_benchmarks_targets_on_a_reduced_set(data_dir, tmp_path):
    """benchmarks/scans.py on 200 scans and the printed digits: the targets it documents."""
    from benchmarks.scans import accuracy, make_printed, make_scans, read_mnist_test

    images, labels = read_mnist_test(data_dir)
    model = zoo.load_pretrained("lenet5_mnist")
    scans = make_scans(images[:200], labels[:200], tmp_path / "scans")
    printed = make_printed(tmp_path / "printed")
    assert accuracy(model, scans, "auto") >= 0.97
    assert accuracy(model, printed, "auto") >= 0.90
    assert accuracy(model, scans, "plain") < 0.5  # what the plain path made of them
