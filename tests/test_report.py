"""`zoo evaluate --report`: numbers checked against scikit-learn, pictures, and the page in a real browser."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score
from torchvision.datasets.mnist import read_image_file, read_label_file

import zoo
from tests.commands import zoo_command
from tests.conftest import REPO
from zoo.report import write_report
from zoo.weights import read_manifest, save_pretrained

ZOO = [sys.executable, "-m", "zoo.cli"]


def evaluate(*args, cwd, data_dir):
    return zoo_command("evaluate", *args, cwd=cwd, env={"ZOO_DATA_DIR": str(data_dir)})


@pytest.fixture(scope="module")
def lenet_report(data_dir, tmp_path_factory):
    """`zoo evaluate lenet5_mnist --report report`, run once from a folder of the user's own."""
    folder = tmp_path_factory.mktemp("user")
    result = evaluate("lenet5_mnist", "--report", "report", cwd=folder, data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "report", result


def test_the_command_prints_the_comparison_and_where_the_report_is(lenet_report):
    report_dir, result = lenet_report
    assert result.stdout.splitlines() == ["metric     measured   recorded", "test/acc     0.9936     0.9936  ok",
                                          "report written to report/index.html"]
    assert sorted(p.name for p in report_dir.iterdir()) == ["confusion_matrix.png", "index.html", "metrics.json",
                                                            "misclassified.png"]


def test_per_class_numbers_are_scikit_learns_on_the_models_own_predictions(lenet_report, data_dir):
    report = json.loads((lenet_report[0] / "metrics.json").read_text())
    x = read_image_file(str(data_dir / "MNIST/raw/t10k-images-idx3-ubyte"))[:, None].float() / 255
    y = read_label_file(str(data_dir / "MNIST/raw/t10k-labels-idx1-ubyte")).numpy()
    model = zoo.load_pretrained("lenet5_mnist")
    with torch.no_grad():
        probabilities = torch.cat([model(x[i:i + 2000]).softmax(1) for i in range(0, 10000, 2000)]).numpy()
    predicted = probabilities.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=list(range(10)), zero_division=0)
    assert [row["class"] for row in report["per_class"]] == report["class_names"] == [str(d) for d in range(10)]
    for i, row in enumerate(report["per_class"]):
        assert row["precision"] == pytest.approx(precision[i], abs=1e-6)
        assert row["recall"] == pytest.approx(recall[i], abs=1e-6)
        assert row["f1"] == pytest.approx(f1[i], abs=1e-6)
        assert row["support"] == support[i]
    assert report["confusion_matrix"] == confusion_matrix(y, predicted, labels=list(range(10))).tolist()  # [true][pred]
    assert sum(map(sum, report["confusion_matrix"])) == report["test_images"] == 10000
    for k, value in report["top_k_accuracy"].items():
        assert value == pytest.approx(top_k_accuracy_score(y, probabilities, k=int(k), labels=list(range(10))), abs=1e-6)
    assert report["metrics"]["test/acc"] == pytest.approx(read_manifest()["lenet5_mnist"]["metrics"]["test/acc"], abs=0.002)
    errors = report["most_confident_errors"]
    assert errors and all(predicted[e["index"]] != y[e["index"]] for e in errors)
    assert [e["probability"] for e in errors] == sorted((e["probability"] for e in errors), reverse=True)
    provenance = report["provenance"]
    assert provenance["sha256"] == read_manifest()["lenet5_mnist"]["sha256"]
    assert provenance["recipe"] == "zoo fit --config lenet5_mnist" and provenance["seed"] == 42


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def test_the_page_shows_every_picture_in_a_real_browser(lenet_report, tmp_path):
    chromium = _chromium()
    page = (lenet_report[0] / "index.html").read_text()
    assert "<script" not in page and page.count("<img src='data:image/png;base64,") == 2  # self-contained
    # A copy of the page that records, once loaded, the width at which the browser decoded each image.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", "<script>onload = () => document.body.dataset.widths = "
                                  "[...document.images].map(i => i.naturalWidth).join(',')</script></body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    widths = [int(w) for w in re.search(r'data-widths="([\d,]+)"', dom).group(1).split(",")]
    assert len(widths) == 2 and min(widths) > 100
    for text in ("Per class", "Provenance", "99.36 %", "confusion matrix", "zoo fit --config lenet5_mnist"):
        assert text in dom
    shot = tmp_path / "page.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1100,2600", (lenet_report[0] / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    picture = Image.open(shot).convert("RGB")
    assert picture.size == (1100, 2600)
    colours = picture.getcolors(maxcolors=1 << 20)
    assert len(colours) > 1000  # text, tables and the pictures: not a blank or a broken page
    matrix_area = picture.crop((60, 900, 700, 1500))  # where the confusion matrix's coloured cells are drawn
    assert sum(1 for count, (r, g, b) in matrix_area.getcolors(1 << 20) if abs(r - g) > 60 or abs(g - b) > 60) > 10


def test_a_gan_report_has_its_metrics_and_the_same_samples_every_time(data_dir, tmp_path):
    first = write_report("gan_mnist", tmp_path / "a", data_dir=str(data_dir), accelerator="cpu")
    write_report("gan_mnist", tmp_path / "b", data_dir=str(data_dir), accelerator="cpu")
    assert first["metrics"]["test/fid_lenet"] == pytest.approx(read_manifest()["gan_mnist"]["metrics"]["test/fid_lenet"], abs=0.01)
    assert sorted(first["pictures"]) == ["samples.png"] and "per_class" not in first
    assert (tmp_path / "a/samples.png").read_bytes() == (tmp_path / "b/samples.png").read_bytes()
    assert Image.open(tmp_path / "a/samples.png").size == (2 * (8 * 30 + 2), 2 * (8 * 30 + 2))  # 8 x 8, enlarged 2x


def test_an_autoencoder_report_shows_reconstructions(data_dir, tmp_path):
    report = write_report("ae_mnist", tmp_path / "r", data_dir=str(data_dir), accelerator="cpu")
    assert sorted(report["pictures"]) == ["reconstructions.png"]
    assert report["metrics"]["test/psnr"] == pytest.approx(read_manifest()["ae_mnist"]["metrics"]["test/psnr"], abs=0.01)
    assert (tmp_path / "r/index.html").read_text().count("<img src='data:image/png;base64,") == 1
    assert Image.open(tmp_path / "r/reconstructions.png").size[0] == 2 * (12 * 30 + 2)  # 6 pairs a row, enlarged 2x


def test_a_checkpoint_of_ones_own_needs_no_recipe_and_a_folder_names_it(data_dir, tmp_path):
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    fit = subprocess.run([*ZOO, "fit", "--config", "recipes/lenet5_mnist.yaml", "--trainer.max_epochs", "1",
                          "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "2", "--test_after_fit", "false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, "ZOO_DATA_DIR": str(data_dir)})
    assert fit.returncode == 0, fit.stderr[-3000:]
    checkpoint = "runs/lenet5_mnist/version_0/checkpoints/last.ckpt"
    result = evaluate(checkpoint, "--report", "mine", cwd=tmp_path, data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0].split() == ["metric", "measured"]  # nothing recorded to compare with
    report = json.loads((tmp_path / "mine/metrics.json").read_text())
    assert report["test_images"] == 10000 and 0 <= report["metrics"]["test/acc"] <= 1
    folder = save_pretrained(zoo.load_pretrained("lenet5_mnist"), tmp_path / "folder")
    missing = evaluate(str(folder), "--report", "r2", cwd=tmp_path, data_dir=data_dir)
    assert missing.returncode == 2 and "pass the recipe it was trained with, --config RECIPE.yaml" in missing.stderr
    assert not (tmp_path / "r2").exists()
    given = evaluate(str(folder), "--report", "r2", "--config", "recipes/lenet5_mnist.yaml", cwd=tmp_path, data_dir=data_dir)
    assert given.returncode == 0
    assert json.loads((tmp_path / "r2/metrics.json").read_text())["metrics"]["test/acc"] == pytest.approx(0.9936, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["no_such_weights", "--report", "r"], "no_such_weights: no shipped weights of that name"),
    (["lenet5_mnist", "--report", "a_file"], "--report a_file is a file: name a folder for the report"),
    (["missing.ckpt", "--report", "r"], "missing.ckpt: no such checkpoint file"),
    (["corrupt.ckpt", "--report", "r"], "corrupt.ckpt is truncated, corrupt or not a Lightning checkpoint"),
    (["lenet5_mnist", "--report", "r", "--config", "nope.yaml"], "--config nope.yaml: no such recipe file"),
])
def test_bad_requests_get_one_line_errors(args, message, tmp_path, data_dir):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint")
    result = evaluate(*args, cwd=tmp_path, data_dir=data_dir)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
