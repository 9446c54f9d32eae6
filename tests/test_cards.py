"""Model cards: written from the manifest and the reports, linked from the README, and by save_pretrained."""

import json
import re
import shutil

import pytest

import zoo
from tests.conftest import REPO
from zoo.cards import CARDS_DIR, REPORTS_DIR, model_card, write_cards
from zoo.weights import read_manifest, save_pretrained

WEIGHTS = REPO / "weights"
SHIPPED = sorted(read_manifest())


def test_the_shipped_cards_are_the_ones_the_manifest_and_reports_make(tmp_path):
    shutil.copy(WEIGHTS / "manifest.json", tmp_path)
    shutil.copytree(WEIGHTS / REPORTS_DIR, tmp_path / REPORTS_DIR)
    written = write_cards(tmp_path)
    assert [p.stem for p in written] == SHIPPED
    for path in written:
        committed = WEIGHTS / CARDS_DIR / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run python -m zoo.cards weights"
    assert sorted(p.name for p in (WEIGHTS / CARDS_DIR).iterdir()) == sorted(p.name for p in written)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_card_says_what_the_manifest_records(name):
    entry = read_manifest()[name]
    card = (WEIGHTS / CARDS_DIR / f"{name}.md").read_text()
    assert card.startswith("---\nlibrary_name: lightning-zoo\n") and f"\n# {name}\n" in card
    assert entry["recipe"] in card and entry["sha256"] in card and f"{entry['num_params']:,} parameters" in card
    assert "License of the data: " in card and "## Intended use and limitations" in card
    for key in entry["metrics"]:
        assert f"| `{key}` |" in card
    start = entry.get("training", {}).get("started_from")
    if start:  # weights trained from other weights say so, and those are shipped too
        assert f"It started from the weights `{start}`, whose training came first." in card and start in SHIPPED
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card):  # every picture a card shows is there
        assert (WEIGHTS / CARDS_DIR / picture).resolve().is_file(), picture


def test_a_classifier_card_gives_per_class_numbers_from_its_report():
    card = (WEIGHTS / CARDS_DIR / "lenet5_mnist.md").read_text()
    report = json.loads((WEIGHTS / REPORTS_DIR / "lenet5_mnist" / "metrics.json").read_text())
    assert "| `test/acc` | 99.36 % | accuracy |" in card
    rows = re.findall(r"^\| (\S+) \| ([\d.]+) % \| ([\d.]+) % \| ([\d.]+) % \| ([\d,]+) \|$", card, re.M)
    assert [r[0] for r in rows] == [str(d) for d in range(10)]
    assert sum(int(r[4].replace(",", "")) for r in rows) == 10000
    for row, expected in zip(rows, report["per_class"]):
        assert float(row[2]) == pytest.approx(100 * expected["recall"], abs=0.005)


def test_the_readme_table_links_every_shipped_weight_to_its_card():
    readme = (REPO / "README.md").read_text()
    linked = re.findall(r"^\| \[`(\w+)`\]\(weights/cards/(\w+)\.md\) \|", readme, re.M)
    assert sorted(a for a, b in linked if a == b) == SHIPPED


def test_save_pretrained_writes_a_card_beside_the_weights(tmp_path):
    model = zoo.create_model("lenet5", num_classes=3, class_names=["cat", "dog", "owl"])
    folder = save_pretrained(model, tmp_path / "pets", metrics={"test/acc": 0.875})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    config = json.loads((folder / "config.json").read_text())
    assert "\n# pets\n" in card and config["sha256"] in card and "`cat`, `dog`, `owl`" in card
    assert "| `test/acc` | 87.50 % | accuracy |" in card and "save_pretrained(model, folder, metrics=...)" in card
    assert 'zoo.load_pretrained("pets")' in card
    assert zoo.load_pretrained(folder).class_names == ["cat", "dog", "owl"]  # the card is not in the way


def test_a_card_without_a_recipe_or_dataset_claims_neither():
    entry = {"class_path": "zoo.models.autoencoder.VAE", "hparams": {}, "sha256": "0" * 64, "metrics": {}}
    card = model_card("mine", entry)
    assert "## Data" not in card and "## Measured" not in card and "recipe" not in card.lower()
    assert "zoo sample mine 16 --output samples/" in card and "samples = model.sample(16)" in card


@pytest.mark.parametrize("name", [n for n in SHIPPED if "per_class" in json.loads(
    (WEIGHTS / REPORTS_DIR / n / "metrics.json").read_text())])
def test_the_shipped_reports_hold_what_the_weights_predict_today(name, data_dir):
    import torch

    from zoo.evaluate import datamodule_for

    report = json.loads((WEIGHTS / REPORTS_DIR / name / "metrics.json").read_text())
    model = zoo.load_pretrained(name)
    datamodule = datamodule_for(name, data_dir=str(data_dir))
    datamodule.setup("test")
    n = len(report["per_class"])
    matrix = torch.zeros(n, n, dtype=torch.long)
    with torch.inference_mode():
        for x, y in datamodule.test_dataloader():
            matrix += torch.bincount(y * n + model(x).argmax(1), minlength=n * n).view(n, n)
    # Another torch version may round a borderline image the other way: allow two such images.
    assert (matrix - torch.tensor(report["confusion_matrix"])).abs().sum() <= 4
    assert report["provenance"]["sha256"] == read_manifest()[name]["sha256"]
